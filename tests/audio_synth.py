"""A synthesised speech-commands set for audio tests: spoken words as 16 kHz mono .wav files in class folders.

Made with Debian's ``espeak-ng`` (the speech: several English voices and voice variants, speeds and pitches)
and ``sox`` (resampling to 16 kHz, white/pink/brown noise mixed in, gain, leading and trailing silence).
Every choice comes from a seeded numpy generator and sox runs with ``-R`` (repeatable noise), so a seed
gives the same files on every machine with the same espeak-ng and sox.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

WORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan")
VARIANTS = ("m1", "m3", "m5", "m7", "f1", "f2", "f4", "klatt")
NOISES = ("whitenoise", "pinknoise", "brownnoise")
RATE = 16000


def tools_missing() -> list[str]:
    """The command-line tools this module needs that are not on PATH."""
    return [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]


def synth_speech_commands(root: Path, per_class: int = 12, words: tuple[str, ...] = WORDS,
                          seed: int = 0) -> Path:
    """Write ``root/<word>/<word>_<n>.wav`` for each word, ``per_class`` takes each, and return ``root``."""
    rng = np.random.default_rng(seed)
    scratch = root / ".." / f".{root.name}-scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    for word in words:
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _speak(word, root / word / f"{word}_{i:02d}.wav", scratch / "speech.wav", rng)
    shutil.rmtree(scratch)
    return root


def _speak(word: str, out: Path, scratch: Path, rng: np.random.Generator) -> None:
    """One take of ``word``: a random voice, speed and pitch, then noise, gain and padding."""
    voice = f"{rng.choice(VOICES)}+{rng.choice(VARIANTS)}"
    speed, pitch = int(rng.integers(110, 200)), int(rng.integers(15, 85))
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(scratch), word],
                   check=True, capture_output=True)
    with wave.open(str(scratch)) as handle:
        seconds = handle.getnframes() / handle.getframerate()
    lead, tail = (round(float(x), 3) for x in rng.uniform(0.0, 0.25, size=2))
    noise, level = str(rng.choice(NOISES)), round(float(rng.uniform(0.005, 0.04)), 4)
    gain = round(float(rng.uniform(-8.0, 0.0)), 2)
    noise_input = f"|sox -R -n -r {RATE} -c 1 -b 16 -p synth {seconds + lead + tail:.3f} {noise}"
    subprocess.run(["sox", "-R", "-m", "-v", "1", "|sox -R " + str(scratch) + f" -r {RATE} -c 1 -b 16 -p "
                    f"pad {lead} {tail}", "-v", str(level), noise_input, "-r", str(RATE), "-c", "1", "-b", "16",
                    str(out), "gain", str(gain)], check=True, capture_output=True)
