"""The peers' own response models, vendored so that the peer tests validate rerankd's answers exactly as
the peers' clients and tests do. Each module names its source file, the commit it was read at, and its
licence; the models are copied field for field, with only the imports the peers' packages need removed."""
