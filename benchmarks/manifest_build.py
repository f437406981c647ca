#!/usr/bin/env python3
"""Wall time and peak memory of the LibriSpeech 960 h manifest build.

Builds a synthetic tree in LibriSpeech's layout with the 960 h training
set's size (``--utterances``, default 281,241: train-clean-100 28,539 +
train-clean-360 104,014 + train-other-500 148,688 utterances, 48 per
chapter, 2 chapters per speaker), plus small dev and test splits. Every
``.flac`` is a hard link to one real 1-second FLAC file (its header is
read for each row, as for the real corpus; the tree costs directory entries,
not 60 GB), every ``.trans.txt`` has the chapter's ``UTTID TEXT`` lines.

Then :func:`speechbrain_ee.data.librispeech.prepare_librispeech` runs in a
fresh subprocess, which reports its wall time and peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``; also once the imports are
done: torch, which the package imports, is most of it); with ``--lhotse`` lhotse's
own ``prepare_librispeech`` of the same tree is measured the same way.

    python benchmarks/manifest_build.py --workdir /tmp/ls960 \\
        --json-out results/manifest_build_librispeech960.json

The last line printed is the JSON result.
"""

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time

import numpy
import soundfile

SPLITS_960 = {"train-clean-100": 28539, "train-clean-360": 104014, "train-other-500": 148688}
PER_CHAPTER = 48
LINKS_PER_FILE = 60000  # ext4 allows 65,000 hard links to a file
WORDS = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG WHILE IT'S RAINING".split()

MEASURE_OURS = """
import json, resource, sys, time
start = time.time()
from speechbrain_ee.data.librispeech import prepare_librispeech
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
paths = prepare_librispeech(sys.argv[1], sys.argv[2], train_splits=sys.argv[3].split(","),
                            dev_splits=["dev-clean"], test_splits=["test-clean"])
rows = sum(1 for _ in open(paths["train"])) - 1
print(json.dumps({"wall_s": round(time.time() - start, 2), "train_rows": rows,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "peak_rss_after_imports_mb": round(imported, 1)}))
"""

MEASURE_LHOTSE = """
import json, resource, sys, time
start = time.time()
from lhotse.recipes import prepare_librispeech
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
parts = prepare_librispeech(sys.argv[1], dataset_parts=sys.argv[3].split(","), num_jobs=1)
rows = sum(len(p["supervisions"]) for p in parts.values())
print(json.dumps({"wall_s": round(time.time() - start, 2), "train_rows": rows,
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "peak_rss_after_imports_mb": round(imported, 1)}))
"""


def split_sizes(utterances):
    """The training splits' sizes, scaled so that they sum to ``utterances``.

    Example
    -------
    >>> split_sizes(281241) == SPLITS_960, sum(split_sizes(1000).values())
    (True, 1000)
    """
    total = sum(SPLITS_960.values())
    sizes = {name: utterances * count // total for name, count in SPLITS_960.items()}
    sizes["train-other-500"] += utterances - sum(sizes.values())
    return sizes


def build_tree(root, sizes, extra_splits=("dev-clean", "test-clean"), extra_size=96):
    """Writes the synthetic LibriSpeech tree; returns the number of utterances."""
    rng = numpy.random.default_rng(0)
    audio = (0.05 * rng.standard_normal(16000)).astype("float32")
    speaker, count, template = 100, 0, None
    for split, size in [*sizes.items(), *((s, extra_size) for s in extra_splits)]:
        left = size
        while left > 0:
            speaker += 1
            for chapter in (1, 2):
                if left <= 0:
                    break
                folder = os.path.join(root, split, str(speaker), str(chapter))
                os.makedirs(folder)
                lines = []
                for index in range(min(PER_CHAPTER, left)):
                    uttid = f"{speaker}-{chapter}-{index:04d}"
                    if (count + index) % LINKS_PER_FILE == 0:  # file systems cap the links to one file
                        template = os.path.join(root, f"template{(count + index) // LINKS_PER_FILE}.flac")
                        soundfile.write(template, audio, 16000, format="FLAC")
                    os.link(template, os.path.join(folder, f"{uttid}.flac"))
                    words = [WORDS[(index + k) % len(WORDS)] for k in range(3 + index % 9)]
                    lines.append(f"{uttid} {' '.join(words)}")
                with open(os.path.join(folder, f"{speaker}-{chapter}.trans.txt"), "w") as handle:
                    handle.write("\n".join(lines) + "\n")
                left -= len(lines)
                count += len(lines)
    return count


def measure(script, corpus, out, splits):
    """Runs ``script`` in a fresh interpreter; its JSON line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script, corpus, out, ",".join(splits)],
                          check=True, capture_output=True, text=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_model():
    """``lscpu``'s model name (or the platform's processor string)."""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=sum(SPLITS_960.values()))
    parser.add_argument("--workdir", required=True, help="scratch folder (emptied first, removed after)")
    parser.add_argument("--lhotse", action="store_true", help="also measure lhotse's prepare_librispeech")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic tree")
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args(argv)

    shutil.rmtree(args.workdir, ignore_errors=True)
    corpus = os.path.join(args.workdir, "LibriSpeech")
    os.makedirs(corpus)
    sizes = split_sizes(args.utterances)
    load_before = os.getloadavg()
    start = time.time()
    build_tree(corpus, sizes)
    result = {
        "command": shlex.join(["python", "benchmarks/manifest_build.py", *(argv or sys.argv[1:])]),
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count()},
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "train_splits": sizes,
        "tree_build_s": round(time.time() - start, 2),
        "ours": measure(MEASURE_OURS, corpus, os.path.join(args.workdir, "manifests"), list(sizes)),
    }
    if args.lhotse:
        result["lhotse_prepare_librispeech"] = measure(MEASURE_LHOTSE, corpus, "-", list(sizes))
    result["load_average_before"] = [round(x, 2) for x in load_before]
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result["goal"] = {"wall_s": 120, "peak_rss_mb": 1024}
    result["met"] = result["ours"]["wall_s"] < 120 and result["ours"]["peak_rss_mb"] < 1024
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    if args.json_out:
        os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, "w") as handle:
            json.dump(result, handle, indent=2)
            handle.write("\n")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
