#!/usr/bin/env bash
# Installs Debian's period-hand fonts where apt-get is available and we are root; elsewhere it
# says what it could not install. The synthesiser uses the fonts it finds and a config that asks
# for a missing font is an error, never a silent substitute.
set -u
fonts=("$@")
missing=()
for f in "${fonts[@]}"; do
  dpkg -s "$f" >/dev/null 2>&1 || missing+=("$f")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "fonts: all period-hand fonts are installed"; exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "fonts: installing ${missing[*]}"
  if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/tmp/docrestore-fonts.log 2>&1; then
    echo "fonts: installed"; exit 0
  fi
  echo "fonts: apt-get failed (see /tmp/docrestore-fonts.log)"
fi
echo "fonts: could not install ${missing[*]} (needs apt-get as root)."
echo "fonts: the smoke profile uses DejaVu fonts; configs that name a missing hand will stop with an error."
exit 0
