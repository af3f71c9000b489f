"""What preparing a dataset produced, in a few lines: splits, classes, and for our builders the files skipped,
converted and grouped. train.py and `python -m cli.prepare` both print it."""

from fastclassify.pipelines import sources


def report(builder) -> str:
    """Split sizes, classes and, for builders that record them, skipped and converted files."""
    lines = [f'{builder.name}/{builder.builder_config.name if builder.builder_config else ""} '
             f'in {builder.data_dir}']
    lines += [f'  {split}: {count:,} examples' for split, count in sorted(sources.split_sizes(builder).items())]
    lines.append(f'  classes: {len(sources.class_names(builder))}')
    metadata = builder.info.metadata or {}
    if 'num_skipped' in metadata:
        lines.append(f'  skipped: {metadata["num_skipped"]} files')
        lines += [f'    {s["path"]}: {s["reason"]}' for s in metadata['skipped']]
        lines.append(f'  converted to RGB JPEG: {metadata["num_converted"]} files')
        lines.append(f'  byte-identical groups (kept in one split): {len(metadata["duplicates"])}')
        if metadata.get('empty_classes'):
            lines.append(f'  class folders with no usable image (not classes): {", ".join(metadata["empty_classes"])}')
    return '\n'.join(lines)
