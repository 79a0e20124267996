"""Pipeline stages. Each module is a thin command line (`python -m stages.NAME`) over `stages.lib`."""
