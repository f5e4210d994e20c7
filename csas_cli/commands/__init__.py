"""One module a command (finetune, finetune-all, sweep, bench, check-data, convert, split, check-glossary,
translate, evaluate, merge and merge-all, export, report, tiny-models, models and config show): each takes the settings
objects its options make and writes its output. They build on training/, inference/ and data/, never on each
other."""
