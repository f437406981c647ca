"""What a Brain of this package reads, declared once: its options (hparams
with their defaults and meaning) and the batch keys its datasets must give."""

from typing import Any, NamedTuple


class BrainOption(NamedTuple):
    """An optional hparam of a Brain: its name, default and meaning."""

    name: str
    default: Any
    meaning: str


def brain_options(brain_class):
    """``{name: BrainOption}`` of a Brain class and its bases (a subclass's
    declaration wins).

    Example
    -------
    >>> class Base:
    ...     OPTIONS = (BrainOption("a", 1, "first"),)
    >>> class Child(Base):
    ...     OPTIONS = (BrainOption("a", 2, "first, changed"), BrainOption("b", None, "second"))
    >>> {k: v.default for k, v in brain_options(Child).items()}
    {'a': 2, 'b': None}
    """
    options = {}
    for klass in reversed(brain_class.__mro__):
        for option in vars(klass).get("OPTIONS", ()):
            options[option.name] = option
    return options


def declared_option(brain, name):
    """``brain.hparams.<name>`` if set (not None), else the declared default;
    a name the Brain does not declare is a programming error (KeyError)."""
    options = brain_options(type(brain))
    if name not in options:
        raise KeyError(f"{type(brain).__name__} declares no option {name!r}")
    value = getattr(brain.hparams, name, None) if brain.hparams is not None else None
    return options[name].default if value is None else value


def dataset_output_keys(dataset):
    """The keys a dataset's batches will have, when it says so (a
    SpeechBrain ``DynamicItemDataset`` or a ``DataLoader`` of one); None
    when it cannot tell."""
    dataset = getattr(dataset, "dataset", dataset)  # a DataLoader
    pipeline = getattr(dataset, "pipeline", None)
    mapping = getattr(pipeline, "output_mapping", None)
    return set(mapping) if mapping else None


def check_dataset_keys(dataset, keys, what):
    """Raises ``ValueError`` naming the first of ``keys`` that ``dataset``
    (see :func:`dataset_output_keys`) does not provide.

    Example
    -------
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> data = DynamicItemDataset({"a": {"words": "HELLO"}}, output_keys=["id", "words"])
    >>> check_dataset_keys(data, ["id", "words"], "training set")
    >>> check_dataset_keys(data, ["wrd"], "training set")
    Traceback (most recent call last):
    ...
    ValueError: the training set gives no batch key 'wrd' (it gives: id, words); set the Brain's hparam for that key or add it to the dataset's output keys
    """
    given = dataset_output_keys(dataset)
    if given is None:
        return
    for key in keys:
        if key not in given:
            raise ValueError(
                f"the {what} gives no batch key {key!r} (it gives: {', '.join(sorted(given))}); "
                "set the Brain's hparam for that key or add it to the dataset's output keys"
            )
