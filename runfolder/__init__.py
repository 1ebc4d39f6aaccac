"""The run folder: the on-disk contract between ``bench`` (which measures and writes) and
``reports`` (which reads and draws). Its schema, its writer and reader, the naming of run
folders, finding one to resume and merging what a resumed run adds. Imports neither."""
