"""Training: recognizer pretraining (`recognizer.pretrain`) and the GAN trainer (`gan.train`)."""
