"""Experiment configs (big_vision style): each file's get_config(arg) returns a ConfigDict.

Pass one with `--config trainer/configs/NAME.py[:ARG]`; its docstring gives the command
and the paper's expected result. `common.py` holds the shared recipe.
"""
