"""Config: the Structs of tocsin.toml, reading files with located errors, and the value checks."""
