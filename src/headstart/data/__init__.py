"""Loading and checking a user's data.

Accepted sources (for ``source``, ``val`` and ``test``): a folder ``<root>/<class>/<files>``
(images, sound files or .txt texts; a root with train/, val/ or validation/, test/ supplies the splits), a
table file (.csv, .tsv, .jsonl, .ndjson, .parquet), a pandas DataFrame, or a pair
``(items, labels)`` of texts, image paths, PIL images or uint8 numpy arrays. Nothing here ever
writes into a data folder.
"""

from headstart.data.bundled import bbc_news_csv, bbc_news_folder, mnist_folder, nrc_emotions_jsonl, vader_valence_csv
from headstart.data.dataset import Dataset, DataSplits, Skipped
from headstart.data.images import IMAGE_EXTENSIONS, load_image
from headstart.data.load import load_data, load_items, load_labelled

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataSplits",
    "Dataset",
    "Skipped",
    "bbc_news_csv",
    "bbc_news_folder",
    "load_data",
    "load_image",
    "load_items",
    "load_labelled",
    "mnist_folder",
    "nrc_emotions_jsonl",
    "vader_valence_csv",
]
