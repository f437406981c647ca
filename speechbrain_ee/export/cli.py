"""Export an early-exit model for deployment without PyTorch (``sbee export``).

    python -m speechbrain_ee.export.cli pretrained/an4-conformer-ctc-ee --output an4-onnx
    python -m speechbrain_ee.export.cli pretrained/an4-conformer-ctc-ee --output an4-onnx-int8 --int8

Writes a deployment folder (see :mod:`speechbrain_ee.export.onnx`) that
``python -m speechbrain_ee.runtime`` runs. Bad input: one ``error:`` line
on stderr and exit status 2.
"""

import argparse
import sys


def add_arguments(parser):
    """Adds the export options to ``parser`` (to mount it as a sub-command)."""
    parser.add_argument("model", help="exported model directory (hyperparams.yaml, model.ckpt, ...)")
    parser.add_argument("--output", "-o", required=True, help="deployment folder to write")
    parser.add_argument("--format", choices=("onnx",), default="onnx")
    parser.add_argument("--int8", action="store_true",
                        help="int8 weights (onnxruntime dynamic quantization of MatMul/Gemm)")
    parser.add_argument("--quantize-heads", action="store_true",
                        help="with --int8: quantize the CTC heads too (default: kept in float)")
    parser.add_argument("--quantize-frontend", action="store_true",
                        help="with --int8: quantize the front-end graph's input projection too (default: float)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    return parser


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    args = add_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0])).parse_args(argv)
    if (args.quantize_heads or args.quantize_frontend) and not args.int8:
        print("error: --quantize-heads and --quantize-frontend go with --int8", file=sys.stderr)
        return 2
    from speechbrain_ee.export.onnx import export_model_dir

    print(f"exporting {args.model} -> {args.output} ({'int8' if args.int8 else 'fp32'})", file=sys.stderr)
    try:
        files = export_model_dir(args.model, args.output, int8=args.int8,
                                 float_heads=not args.quantize_heads,
                                 float_frontend=not args.quantize_frontend, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    total = sum(entry["bytes"] for entry in files.values())
    for name, entry in files.items():
        print(f"{name}\t{entry['bytes']}\t{entry['sha256']}")
    print(f"wrote {len(files)} files, {total / 1e6:.2f} MB, to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
