"""Pack PASCAL VOC image sets into an MXNet RecordIO file for ImageDetRecordIter.

    python data/pack_voc.py --voc-root VOCdevkit --sets 2007-trainval,2012-trainval \\
        --out data/voc_trainval [--classes a,b,c | --classes FILE] [--strict] [--workers N]

Writes PREFIX.rec, PREFIX.idx, PREFIX.lst and PREFIX.classes.txt (see ssd_gluon/voc.py for
the record format) and prints a summary. Errors print one ``error: ...`` line, exit status 1.
"""
import argparse
import os
import sys

try:
    import ssd_gluon  # noqa: F401
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssd_gluon.voc import VOC_CLASSES, PackError, check_class_names, pack_voc  # noqa: E402


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--voc-root', required=True,
                        help='directory holding VOC<YEAR>/ folders (e.g. VOCdevkit)')
    parser.add_argument('--sets', required=True,
                        help='comma-separated YEAR-SPLIT image sets, '
                             'e.g. 2007-trainval,2012-trainval')
    parser.add_argument('--out', required=True, help='output prefix (PREFIX.rec, .idx, .lst, ...)')
    parser.add_argument('--classes', default=None,
                        help='comma-separated class names or a file with one name per line '
                             '(default: the 20 VOC classes)')
    parser.add_argument('--strict', action='store_true',
                        help='fail on the first bad item instead of skipping it')
    parser.add_argument('--workers', type=int, default=None,
                        help='decode/encode processes (default: CPU count; 0 = in-process)')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return parser


def load_class_names(spec):
    """Return class names from ``spec``: a file (one name per line) or ``a,b,c``."""
    if spec is None:
        return VOC_CLASSES
    source = '--classes'
    if os.path.isfile(spec):
        source = spec
        with open(spec) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = [name.strip() for name in spec.split(',') if name.strip()]
    try:
        return check_class_names(names)
    except ValueError as err:
        raise PackError(source, err, 'bad classes') from None


def main(args):
    try:
        class_names = load_class_names(args.classes)
        sets = [s.strip() for s in args.sets.split(',') if s.strip()]
        summary = pack_voc(args.voc_root, sets, args.out, class_names=class_names,
                           strict=args.strict, num_workers=args.workers,
                           progress=not args.no_progress)
    except (PackError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('error: interrupted (no output written)', file=sys.stderr)
        return 130
    print(summary.format())
    return 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
