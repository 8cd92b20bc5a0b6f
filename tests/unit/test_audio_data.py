"""Audio data: class folders and tables of sound files, predict inputs, clip length, bad inputs, collation."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from headstart.backbones.audio_preprocessing import AudioPreprocessing
from headstart.data import load_data, load_items
from headstart.data.audio import MAX_SECONDS, choose_clip_seconds, read_audio
from headstart.core.errors import DataError

WORDS = 8


def _copy_classes(speech_folder: Path, root: Path, classes=("yes", "no")) -> Path:
    for name in classes:
        shutil.copytree(speech_folder / name, root / name)
    return root


def test_a_folder_of_sound_files_is_audio_with_a_class_per_folder(speech_folder):
    splits = load_data(str(speech_folder), val_fraction=0.25)
    assert splits.train.modality == "audio"
    assert len(splits.classes) == WORDS
    assert len(splits.train) + len(splits.val) == WORDS * 6
    assert all(item.endswith(".wav") for item in splits.train.items)


def test_a_table_of_sound_paths_is_audio(speech_folder, tmp_path):
    root = _copy_classes(speech_folder, tmp_path / "data")
    with open(root / "clips.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["audio", "label"])
        for path in sorted(root.glob("*/*.wav")):
            writer.writerow([path.relative_to(root).as_posix(), path.parent.name])
    splits = load_data(str(root / "clips.csv"))
    assert splits.train.modality == "audio" and splits.classes == ["no", "yes"]


def test_predict_inputs_read_files_folders_and_tables(speech_folder, tmp_path):
    one = sorted((speech_folder / "go").glob("*.wav"))[0]
    assert load_items(str(one)).modality == "audio"
    folder = load_items(str(speech_folder / "go"))
    assert folder.modality == "audio" and len(folder) == 6
    table = tmp_path / "inputs.csv"
    shutil.copytree(speech_folder / "go", tmp_path / "go")
    table.write_text("path\n" + "\n".join(f"go/{p.name}" for p in sorted((tmp_path / "go").glob("*.wav"))) + "\n")
    assert load_items(str(table)).modality == "audio" and len(load_items(str(table))) == 6


def test_flac_ogg_and_mp3_decode_to_the_same_sound(speech_folder, tmp_path):
    source = sorted((speech_folder / "up").glob("*.wav"))[0]
    samples, rate = soundfile.read(source, dtype="float32")
    for fmt in ("flac", "ogg", "mp3"):
        path = tmp_path / f"up.{fmt}"
        soundfile.write(path, samples, rate)
        decoded = read_audio(str(path), rate)
        assert abs(len(decoded) - len(samples)) < rate // 10
        n = min(len(decoded), len(samples))
        assert np.corrcoef(decoded[:n], samples[:n])[0, 1] > 0.9


def test_mixed_sound_and_image_files_are_refused(speech_folder, tmp_path, image_folder):
    root = _copy_classes(speech_folder, tmp_path / "data")
    shutil.copy(next((image_folder / "red").glob("*.png")), root / "yes" / "photo.png")
    with pytest.raises(DataError, match="mixed modalities: .* sound file"):
        load_data(str(root))


def _bad_files(root: Path) -> dict[str, Path]:
    """One file per kind of bad sound, in class folder 'yes'."""
    folder = root / "yes"
    corrupt = folder / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really a sound file" * 4)
    empty = folder / "empty.wav"
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 16000)
    silent = folder / "silent.wav"
    soundfile.write(silent, np.zeros(8000, dtype=np.float32), 16000)
    long = folder / "long.flac"  # 601 s at 1 kHz: over the limit, small on disk
    soundfile.write(long, np.full(int((MAX_SECONDS + 1) * 1000), 0.1, dtype=np.float32), 1000)
    return {"corrupt": corrupt, "empty": empty, "silent": silent, "long": long}


@pytest.mark.parametrize("kind, message", [
    ("corrupt", r"corrupt\.wav' cannot be decoded as audio .*Re-save it as 16-bit \.wav"),
    ("empty", r"empty\.wav' is empty \(no samples\)"),
    ("silent", r"silent\.wav' is silent \(digital silence\)"),
    ("long", r"long\.flac' is 601\.0 s long, over the limit of 600 s for one item. Cut it into clips"),
])
def test_each_bad_sound_stops_with_a_message_naming_the_file(speech_folder, tmp_path, kind, message):
    root = _copy_classes(speech_folder, tmp_path / "data")
    (tmp_path / "bad" / "yes").mkdir(parents=True)
    bad = _bad_files(tmp_path / "bad")[kind]
    shutil.copy(bad, root / "yes" / bad.name)
    with pytest.raises(DataError, match=message) as info:
        load_data(str(root))
    assert f"yes/{bad.name}" in str(info.value) and "--skip-bad" in str(info.value)


def test_skip_bad_lists_every_bad_sound(speech_folder, tmp_path):
    root = _copy_classes(speech_folder, tmp_path / "data")
    (root / "yes").mkdir(exist_ok=True)
    bad = _bad_files(root)
    splits = load_data(str(root), skip_bad=True)
    skipped = {Path(s.origin).name: s.reason for s in splits.skipped}
    assert set(skipped) == {p.name for p in bad.values()}
    assert "is silent" in skipped["silent.wav"] and "cannot be decoded" in skipped["corrupt.wav"]
    assert len(splits.train) + len(splits.val) == 12


def test_clip_length_comes_from_the_data(speech_folder):
    paths = [str(p) for p in sorted(speech_folder.glob("*/*.wav"))]
    durations = [soundfile.info(p).duration for p in paths]
    clip = choose_clip_seconds(paths)
    assert clip >= np.percentile(durations, 95) and clip - np.percentile(durations, 95) <= 0.25
    assert clip * 4 == int(clip * 4)


def test_collate_resamples_crops_pads_and_augments_under_the_seed(speech_folder):
    prep = AudioPreprocessing(sample_rate=8000, clip_seconds=0.5)
    items = [(str(p), i) for i, p in enumerate(sorted((speech_folder / "left").glob("*.wav"))[:3])]
    waves, labels = prep.collate(False)(items)
    assert waves.shape == (3, 4000) and waves.dtype == torch.float32 and labels.tolist() == [0, 1, 2]
    again, _ = prep.collate(False)(items)
    assert torch.equal(waves, again)  # no augmentation: the same centre crop each time
    torch.manual_seed(1)
    first, _ = prep.collate(True)(items)
    torch.manual_seed(1)
    second, _ = prep.collate(True)(items)
    assert torch.equal(first, second) and not torch.equal(first, waves)
    short = AudioPreprocessing(sample_rate=8000, clip_seconds=5.0).collate(False)(items)[0]
    assert short.shape == (3, 40000) and float(short[:, -100:].abs().max()) == 0.0  # padded with zeros
