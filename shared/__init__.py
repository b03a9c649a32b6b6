"""Code both halves of the project import: the data contract, records and media."""
