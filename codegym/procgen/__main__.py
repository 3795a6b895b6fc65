"""``python -m codegym.procgen --out FILE [--seed S]``: write the procgen dataset (see `codegym.procgen.splits.main`)."""

from codegym.procgen.splits import main

main()
