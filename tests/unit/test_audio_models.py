"""Audio backbones: the sound-effects CNN (packaged weights, front end, layer groups) and tiny random Hugging Face
audio encoders of each family (wav2vec2, HuBERT, AST, Whisper), through every strategy, reload and ONNX export."""

from __future__ import annotations

import base64
import io
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import headstart
from headstart.backbones import available_models
from headstart.backbones.families.sfx_cnn import (
    N_FFT,
    SPEC_MAX,
    LogMel,
    checkpoint_path,
    htk_mel_filters,
    load_checkpoint,
)
from headstart.runs.export import export

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def three_words(speech_folder, tmp_path_factory):
    """3 of the spoken words (18 clips): enough for every strategy, a third of the time."""
    root = tmp_path_factory.mktemp("three") / "words"
    for word in ("yes", "no", "stop"):
        shutil.copytree(speech_folder / word, root / word)
    return root


def test_the_packaged_checkpoint_loads_only_as_weights():
    path = checkpoint_path()
    state = load_checkpoint(path)
    assert len(state) == 48 and sum(v.numel() for v in state.values()) > 4_600_000
    with pytest.raises(pickle.UnpicklingError):  # numpy's classes are not allowed unless named one by one
        torch.load(str(path), map_location="cpu", weights_only=True)
    backbone = headstart.load_backbone("aisfx-cnn")
    assert backbone.modality == "audio" and backbone.feature_dim == 512 and "aisfx" in backbone.source
    assert [len(g) for g in backbone.layer_groups()] == [6, 6, 6, 6]
    row = next(r for r in available_models() if r["name"] == "aisfx-cnn")
    assert row["modality"] == "audio" and row["available"]


def test_the_front_end_is_aisfx_log_mel_as_torch_stft_computes_it():
    from transformers.audio_utils import mel_filter_bank

    reference = mel_filter_bank(num_frequency_bins=1025, num_mel_filters=96, min_frequency=0, max_frequency=22050,
                                sampling_rate=44100, norm=None, mel_scale="htk").T
    assert np.allclose(htk_mel_filters(), reference / reference.sum(1, keepdims=True), atol=1e-12)
    frontend = LogMel()
    wave = torch.randn(2, 30000, generator=torch.Generator().manual_seed(0)) * 0.2
    peak = wave / wave.abs().amax(1, keepdim=True)
    power = torch.stft(peak, N_FFT, N_FFT // 2, window=torch.hann_window(N_FFT), center=True, pad_mode="constant",
                       return_complex=True).abs() ** 2
    expected = torch.log10(torch.matmul(frontend.mel, power).transpose(1, 2) * 1e4 + 1) / SPEC_MAX
    assert torch.allclose(frontend(wave), expected, atol=1e-5)
    assert torch.allclose(frontend(wave * 0.1), frontend(wave), atol=1e-5)  # peak-normalised: gain does not matter


def test_sound_effects_cnn_strategies_run_reload_and_export(audio_backbone, three_words, tmp_path):
    common = dict(progress=False, epochs=1, batch_size=8, val_fraction=0.25)
    results = {}
    for strategy in ("linear", "partial", "full", "lp-ft", "lora"):
        torch.manual_seed(0)
        out = tmp_path / strategy
        results[strategy] = headstart.fit(str(three_words), audio_backbone, strategy, out=str(out), **common)
        assert 0.0 <= results[strategy].metrics["val"]["accuracy"] <= 1.0
    assert results["lora"].metrics["trainable_params"] < results["full"].metrics["trainable_params"]
    for strategy in ("partial", "lora"):
        run = tmp_path / strategy
        inputs = str(three_words / "stop")
        before = results[strategy].predict(inputs)
        after = headstart.load_run(str(run)).predict(inputs)
        assert [r["label"] for r in before] == [r["label"] for r in after]
        assert np.allclose([list(r["probabilities"].values()) for r in before],
                           [list(r["probabilities"].values()) for r in after], atol=1e-5)
    exported = export(str(tmp_path / "partial"), "onnx", str(tmp_path / "partial-onnx"))
    assert exported.max_abs_diff <= 1e-4 and exported.samples >= 2
    config = headstart.load_run(str(tmp_path / "partial")).backbone.preprocessing
    assert config.clip_seconds == 0.5 and config.sample_rate == 44100


def test_augmentation_is_recorded_and_can_be_turned_off(audio_backbone, three_words):
    torch.manual_seed(0)
    result = headstart.fit(str(three_words), audio_backbone, "partial", progress=False, epochs=1, batch_size=8,
                           augment=False)
    assert result.config.augment is False and result.config.clip_seconds == 0.5


def test_clip_seconds_is_chosen_from_the_data_and_can_be_set(three_words):
    torch.manual_seed(0)
    chosen = headstart.fit(str(three_words), "random:aisfx-cnn", "linear", progress=False)
    assert 0.5 <= chosen.config.clip_seconds <= 3.0
    given = headstart.fit(str(three_words), "random:aisfx-cnn", "linear", progress=False, clip_seconds=0.75)
    assert given.config.clip_seconds == 0.75 and given.predictor.backbone.preprocessing.clip_samples == 33075


# ---- Hugging Face audio encoders: tiny random configs of each family ------------------------------------------

def _tiny(kind: str):
    from transformers import (ASTConfig, ASTFeatureExtractor, ASTModel, HubertConfig, HubertModel, Wav2Vec2Config,
                              Wav2Vec2FeatureExtractor, Wav2Vec2Model, WhisperConfig, WhisperFeatureExtractor,
                              WhisperModel)

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    conv = dict(conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2)
    if kind == "wav2vec2":
        return Wav2Vec2Model(Wav2Vec2Config(**small, **conv)), Wav2Vec2FeatureExtractor(return_attention_mask=True)
    if kind == "hubert":
        return HubertModel(HubertConfig(**small, **conv)), Wav2Vec2FeatureExtractor()
    if kind == "ast":
        return ASTModel(ASTConfig(**small, num_mel_bins=32, max_length=64)), \
            ASTFeatureExtractor(num_mel_bins=32, max_length=64)
    config = WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                           decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                           max_source_positions=50, max_target_positions=16, vocab_size=100, pad_token_id=0,
                           bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    return WhisperModel(config), WhisperFeatureExtractor(chunk_length=1)


@pytest.fixture(scope="module")
def tiny_audio_dirs(tmp_path_factory) -> dict:
    """Local Hugging Face folders (model + preprocessor_config.json) of four tiny random audio encoders."""
    folders = {}
    for kind in ("wav2vec2", "hubert", "ast", "whisper"):
        torch.manual_seed(0)
        model, extractor = _tiny(kind)
        folder = tmp_path_factory.mktemp(f"tiny-{kind}")
        model.save_pretrained(str(folder))
        extractor.save_pretrained(str(folder))
        folders[kind] = folder
    return folders


@pytest.mark.parametrize("kind, stem, inputs", [
    ("wav2vec2", 12, {"input_values", "attention_mask", "lengths"}),
    ("hubert", 12, {"input_values", "lengths"}),
    ("ast", 5, {"input_values", "lengths"}),
    ("whisper", 5, {"input_features", "lengths"}),
])
def test_hf_audio_encoders_load_offline_pool_and_group(tiny_audio_dirs, kind, stem, inputs):
    backbone = headstart.load_backbone(str(tiny_audio_dirs[kind]))
    assert backbone.modality == "audio" and backbone.family.name == "hf-audio" and backbone.feature_dim == 32
    groups = backbone.layer_groups()
    assert len(groups) == 4 and len(groups[0]) == stem  # input side, 2 blocks, final norm
    targets, _ = backbone.family.lora_targets(backbone, backbone.module)
    assert len(targets) == 12  # q, k, v, out, two MLP linears per block
    prep = backbone.preprocessing.with_clip(1.0)
    rng = np.random.default_rng(0)
    batch, _ = prep.collate(False)([(rng.normal(0, 0.1, 9000).astype(np.float32), 0),
                                    (rng.normal(0, 0.1, 16000).astype(np.float32), 1)])
    assert set(batch) == inputs and batch["lengths"].tolist() == [9000, 16000]
    with torch.no_grad():
        features = backbone.features(batch)
    assert features.shape == (2, 32) and torch.isfinite(features).all()


def test_hf_audio_pooling_averages_only_frames_of_real_sound(tiny_audio_dirs):
    backbone = headstart.load_backbone(str(tiny_audio_dirs["hubert"]))
    prep = backbone.preprocessing.with_clip(1.0)
    batch, _ = prep.collate(False)([(np.random.default_rng(0).normal(0, 0.1, 8000).astype(np.float32), 0)])
    with torch.no_grad():
        hidden = backbone.module.model(input_values=batch["input_values"]).last_hidden_state[0]
        pooled = backbone.features(batch)[0]
    half = hidden.shape[0] // 2 + (hidden.shape[0] % 2)
    assert torch.allclose(pooled, hidden[:half].mean(0), atol=1e-5)
    assert not torch.allclose(pooled, hidden.mean(0), atol=1e-3)


def test_hf_audio_fits_reloads_and_exports(tiny_audio_dirs, speech_folder, tmp_path):
    torch.manual_seed(0)
    out = tmp_path / "w2v"
    result = headstart.fit(str(speech_folder), str(tiny_audio_dirs["wav2vec2"]), "partial", out=str(out),
                           progress=False, epochs=1, batch_size=8, unfreeze=1)
    inputs = str(speech_folder / "no")
    before = [r["probabilities"] for r in result.predict(inputs)]
    after = [r["probabilities"] for r in headstart.load_run(str(out)).predict(inputs)]
    assert np.allclose([list(p.values()) for p in before], [list(p.values()) for p in after], atol=1e-5)
    assert (out / "model" / "preprocessor_config.json").is_file()
    exported = export(str(out), "onnx", str(tmp_path / "w2v-onnx"))
    assert exported.max_abs_diff <= 1e-4
    whisper = headstart.fit(str(speech_folder), str(tiny_audio_dirs["whisper"]), "linear", progress=False,
                            clip_seconds=1.0)
    assert whisper.config.clip_seconds == 1.0 and 0 <= whisper.metrics["val"]["accuracy"] <= 1


def test_compare_audit_and_advise_take_sound(audio_backbone, three_words, tmp_path):
    from headstart.workflows.advise import advise
    from headstart.workflows.audit import audit
    from headstart.workflows.compare import compare

    torch.manual_seed(0)
    compared = compare(str(three_words), audio_backbone, ["linear", "partial"], progress=False, epochs=1, seeds=1,
                       batch_size=8)
    assert {row["strategy"] for row in compared.to_dict()["rows"]} == {"linear", "partial"}
    compared.save(str(tmp_path / "compare"))
    assert (tmp_path / "compare" / "report.html").is_file()
    report = audit(str(three_words), audio_backbone, progress=False)
    assert report.modality == "audio" and report.to_dict()["sizes"]["train"] + report.to_dict()["sizes"]["val"] == 18
    advice = advise(str(three_words), [audio_backbone], progress=False).to_dict()
    assert advice["ranking"][0]["feature_dim"] == 512 and advice["recommendation"]["strategy"]


def test_a_misclassified_sound_is_shown_as_a_spectrogram_thumbnail(speech_folder):
    from headstart.report.previews import preview, safe_thumbnail

    wav = sorted(speech_folder.glob("*/*.wav"))[0]
    shown = preview(str(wav), "audio")
    assert safe_thumbnail(shown["thumbnail"]) == shown["thumbnail"]
    image = Image.open(io.BytesIO(base64.b64decode(shown["thumbnail"].split(",", 1)[1])))
    assert image.size == (64, 64) and np.asarray(image).std() > 10  # a picture of the sound, not a flat square
    assert preview(str(wav.with_name("gone.wav")), "audio") == {}


def test_advise_says_the_sound_effects_cnn_is_not_a_speech_model(three_words, tmp_path):
    from typer.testing import CliRunner

    from headstart.cli.app import app

    result = CliRunner().invoke(app, ["advise", str(three_words), "--models", "aisfx-cnn"],
                                env={"COLUMNS": "200", "NO_COLOR": "1", "HEADSTART_CACHE": str(tmp_path / "cache")})
    said = " ".join(result.output.split())
    assert result.exit_code == 0, said
    assert "aisfx-cnn learnt from sound-effects libraries, not from speech" in said and "--model facebook/wav2vec2" in said


def test_the_sound_effects_cnn_fine_tunes_its_batchnorm_statistics_without_augmentation_unless_told(
        audio_backbone, three_words):
    options = dict(progress=False, epochs=1, batch_size=8)
    default = headstart.fit(str(three_words), audio_backbone, "partial", **options)
    assert default.info["bn"] == "train" and default.info["augment"] is False
    assert default.config.bn == "train" and default.config.augment is False  # recorded as what ran
    told = headstart.fit(str(three_words), audio_backbone, "partial", augment=True, bn="frozen", **options)
    assert told.info["bn"] == "frozen" and told.info["augment"] is True
