#!/bin/sh
# Debian/Ubuntu packages the project needs; installs only what is missing.
set -e
need=""
python3 -c "import venv, ensurepip" 2>/dev/null || need="$need python3-venv python3-pip"
python3 -c "import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 1)" 2>/dev/null || need="$need python3-dev"
command -v gcc >/dev/null 2>&1 || need="$need build-essential"
# audio: FluidSynth's library for pyfluidsynth and a General MIDI piano (FluidR3)
ldconfig -p 2>/dev/null | grep -q "libfluidsynth\.so" || need="$need libfluidsynth3"
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || need="$need fluid-soundfont-gm"
# real time: JACK (virtual MIDI ports and audio where the machine has no ALSA sequencer) and a
# chromium for the browser test (driven by Playwright; never `playwright install`)
command -v jackd >/dev/null 2>&1 || need="$need jackd2"
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need="$need chromium"
[ -z "$need" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages:$need"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
