"""Reading folders: ``root/<class>/<files>`` (images or .txt texts), or train/val/test splits."""

from __future__ import annotations

import os
from pathlib import Path

from headstart.data.audio import AUDIO_EXTENSIONS, is_audio_name
from headstart.data.dataset import Dataset, Skipped, modality_article, modality_plural
from headstart.data.images import IMAGE_EXTENSIONS, is_image_name
from headstart.data.items import SKIP_BAD, Gate, build_dataset, read_text_file
from headstart.core.errors import DataError

TEXT_EXTENSIONS = frozenset({".txt"})
JUNK_NAMES = frozenset({"thumbs.db", "desktop.ini"})
SPLIT_NAMES = {"train": ("train",), "val": ("val", "validation", "valid"), "test": ("test",)}
SUPPORTED = (f"images ({', '.join(sorted(IMAGE_EXTENSIONS))}), sounds ({', '.join(sorted(AUDIO_EXTENSIONS))}) "
             "or .txt texts")
LAYOUT_HINT = "Expected layout: <folder>/<class name>/<files>, e.g. data/cat/001.jpg"
LINK_OUT = "this is a link to {real}, which is outside the data folder {shown}"
LINK_FIX = ("Files of a data folder must stay inside it, links included (as a table's image paths); copy or move "
            "what the link points to into the folder")


def _visible(folder: Path) -> list[Path]:
    """Entries of ``folder``, sorted, without hidden names and OS junk files."""
    return sorted(
        entry
        for entry in folder.iterdir()
        if not entry.name.startswith(".") and entry.name.lower() not in JUNK_NAMES
    )


def _walk(folder: Path, root: Path, shown: str, gate: Gate) -> list[Path]:
    """Every visible file under ``folder`` (recursive), in sorted order, without links that leave ``root``."""
    found: list[Path] = []
    for entry in _inside(_visible(folder), root, shown, gate):
        if entry.is_dir():
            found.extend(_walk(entry, root, shown, gate))
        elif entry.is_file():
            found.append(entry)
    return found


def _inside(entries: list[Path], root: Path, shown: str, gate: Gate) -> list[Path]:
    """``entries`` of the data folder ``root`` (``shown`` in messages) without the symbolic links that lead
    outside it: each is refused, as a table's image path is (``--skip-bad`` skips it)."""
    kept = []
    for entry in entries:
        real = _leads_out(entry, root)
        if real is None:
            kept.append(entry)
        else:
            gate.reject(os.path.join(shown, os.path.relpath(entry, root)), LINK_OUT.format(real=real, shown=shown),
                        LINK_FIX)
    return kept


def _leads_out(entry: Path, root: Path) -> str | None:
    """The real path ``entry`` leads to when it is a symbolic link out of ``root``; else None."""
    if not entry.is_symlink():
        return None
    real, real_root = os.path.realpath(entry), os.path.realpath(root)
    try:
        return None if os.path.commonpath([real_root, real]) == real_root else real
    except ValueError:  # different drives on Windows
        return real


def split_layout(root: Path, shown: str, gate: Gate) -> dict[str, Path] | None:
    """The train/val/test subfolders of ``root`` if it has a ``train/`` folder, else None."""
    entries = _visible(root)
    folders = {entry.name.lower(): entry for entry in entries if entry.is_dir()}
    if "train" not in folders:
        return None
    for entry in folders.values():
        real = _leads_out(entry, root)
        if real is not None:  # a split cannot be skipped
            raise DataError(f"{os.path.join(shown, entry.name)}: {LINK_OUT.format(real=real, shown=shown)}. "
                            f"{LINK_FIX}.")
    known = {name for names in SPLIT_NAMES.values() for name in names}
    extra = sorted(name for name in folders if name not in known)
    if extra:
        raise DataError(
            f"{shown}: it has a train/ folder, so it is read as train/, val/ (or validation/) and "
            f"test/ splits, but it also has the folder(s) {', '.join(extra)}. Move them into "
            "train/ as class folders, or out of this folder."
        )
    for entry in entries:
        if entry.is_file():
            gate.reject(
                os.path.join(shown, entry.name),
                "this file is directly in the data folder, not in train/, val/ or test/",
                "Move it out of the data folder",
            )
    layout = {}
    for split, names in SPLIT_NAMES.items():
        matches = [folders[name] for name in names if name in folders]
        if len(matches) > 1:
            raise DataError(
                f"{shown}: it has both {matches[0].name}/ and {matches[1].name}/; "
                f"keep only one {split} folder."
            )
        if matches:
            layout[split] = matches[0]
    return layout


def read_folder(root: Path, shown: str, gate: Gate, labelled: bool) -> Dataset:
    """Dataset from ``root/<class>/...`` files (labelled) or from every file under root.

    Unlabelled (inputs to predict), the folder's files of its main kind are read and every other file
    (a notes.txt among images, say) is skipped and listed in ``gate.skipped``.
    """
    if labelled:
        files, labels = _class_files(root, shown, gate)
    else:
        files = _walk(root, root, shown, gate)
        labels = None
    origins = [os.path.join(shown, os.path.relpath(path, root)) for path in files]
    kinds = [_kind(path) for path in files]
    main = None if labelled else gate.modality or _main_kind(kinds)
    if main is not None:
        _check_kind_present(main, kinds, origins, shown)
        _note_others(files, kinds, origins, main, gate)
        kinds = [kind if kind == main else None for kind in kinds]
    else:
        unknown = [i for i, kind in enumerate(kinds) if kind is None]
        if unknown:
            _reject_unknown([origins[i] for i in unknown], [files[i] for i in unknown], shown, gate)
    keep = [i for i, kind in enumerate(kinds) if kind is not None]
    modality = _modality(shown, [files[i] for i in keep], [kinds[i] for i in keep])
    if modality == "text":
        items: list = [read_text_file(files[i]) for i in keep]
    else:
        items = [os.path.abspath(files[i]) for i in keep]
    return build_dataset(
        items,
        None if labels is None else [labels[i] for i in keep],
        [origins[i] for i in keep],
        modality,
        gate,
    )


def _class_files(root: Path, shown: str, gate: Gate) -> tuple[list[Path], list[str]]:
    """Files under each class folder of ``root`` and the class (folder name) of each."""
    files: list[Path] = []
    labels: list[str] = []
    for entry in _inside(_visible(root), root, shown, gate):
        if entry.is_dir():
            found = _walk(entry, root, shown, gate)
            if not found:
                gate.note(
                    os.path.join(shown, entry.name),
                    f"the class folder is empty, so there is no class '{entry.name}'",
                )
            files.extend(found)
            labels.extend([entry.name] * len(found))
        else:
            gate.reject(
                os.path.join(shown, entry.name),
                "this file is directly in the data folder, not in a class folder",
                f"{LAYOUT_HINT}. Move it into a class folder or out of the data folder",
            )
    return files, labels


def _kind(path: Path) -> str | None:
    """'image', 'text' or None (unsupported) from the file extension."""
    if is_image_name(path.name):
        return "image"
    if path.suffix.lower() in TEXT_EXTENSIONS:
        return "text"
    if is_audio_name(path.name):
        return "audio"
    return None


def _main_kind(kinds: list[str | None]) -> str | None:
    """The most frequent of 'image', 'text' and 'audio' among ``kinds``; None on a tie (none, or mixed)."""
    counts = sorted(((kinds.count(k), k) for k in ("image", "text", "audio")), reverse=True)
    if counts[0][0] == counts[1][0]:
        return None
    return counts[0][1]


def _note_others(
    files: list[Path], kinds: list[str | None], origins: list[str], main: str, gate: Gate
) -> None:
    """Note every file not of the ``main`` kind as skipped, saying why."""
    count = kinds.count(main)
    for path, kind, origin in zip(files, kinds, origins):
        if kind == main:
            continue
        what = (f"{modality_article(kind)} file" if kind
                else f"unsupported file type ({path.suffix.lower() or 'no extension'})")
        gate.note(origin, f"{what} in a folder of {count} {main} files: only the {modality_plural(main)} are read")


def _check_kind_present(main: str, kinds: list[str | None], origins: list[str], shown: str) -> None:
    """DataError when a folder read for a ``main`` model holds none of its files but files of another kind."""
    found = [(kind, origin) for kind, origin in zip(kinds, origins) if kind is not None]
    if found and main not in kinds:
        other = _main_kind(kinds) or found[0][0]
        raise DataError(f"{shown}: the model takes {modality_plural(main)}, but the folder holds "
                        f"{modality_plural(other)} (e.g. {found[0][1]}). Give it {modality_plural(main)}, or use "
                        f"a run fitted on {modality_plural(other)}.")


def _reject_unknown(origins: list[str], files: list[Path], shown: str, gate: Gate) -> None:
    """Refuse files of unsupported types: one error listing them, or skip each with skip_bad."""
    if gate.skip_bad:
        for origin, path in zip(origins, files):
            kind = path.suffix.lower() or "no extension"
            gate.skipped.append(
                Skipped(origin, f"unsupported file type ({kind}); expected {SUPPORTED}")
            )
        return
    suffixes = sorted({path.suffix.lower() or "(no extension)" for path in files})
    examples = ", ".join(origins[:5]) + (
        f" and {len(origins) - 5} more" if len(origins) > 5 else ""
    )
    raise DataError(
        f"{shown}: {len(origins)} file(s) of unsupported type ({', '.join(suffixes)}): {examples}. "
        f"headstart reads {SUPPORTED}. Remove or convert them, or pass {SKIP_BAD} to skip them."
    )


def _modality(shown: str, files: list[Path], kinds: list[str]) -> str:
    """The one modality of the files; DataError if there are none or they are mixed."""
    if not files:
        raise DataError(
            f"{shown}: no usable files found. Put {SUPPORTED} in class folders. {LAYOUT_HINT}."
        )
    images = [path for path, kind in zip(files, kinds) if kind == "image"]
    texts = [path for path, kind in zip(files, kinds) if kind == "text"]
    sounds = [path for path, kind in zip(files, kinds) if kind == "audio"]
    if sounds and (images or texts):
        other = images or texts
        raise DataError(
            f"{shown}: mixed modalities: {len(sounds)} sound file(s) (e.g. {sounds[0]}) and {len(other)} "
            f"{'image' if images else '.txt'} file(s) (e.g. {other[0]}). A data set must be of one kind; "
            "move the others to another folder."
        )
    if sounds:
        return "audio"
    if images and texts:
        raise DataError(
            f"{shown}: mixed modalities: {len(images)} image file(s) (e.g. {images[0]}) and "
            f"{len(texts)} .txt file(s) (e.g. {texts[0]}). A data set must be all images or all "
            "texts; move one kind to another folder."
        )
    return "image" if images else "text"
