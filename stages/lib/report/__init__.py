"""The report, one module per job: assemble.py gathers the stage outputs into one document,
advice.py decides (ranking, ship line, recommendations), blocks.py and sections.py render text and
pictures.py the PNGs. No code here: dvc.yaml lists the modules a stage imports, not this file."""
