#!/usr/bin/env python3
"""Classic mistake (lesson 9): a bad setting silently replaced by a default.

STATECRAFT_WORKERS=abc is taken as "use the default": the operator's typo goes
unnoticed and the service runs with a configuration nobody asked for.
Everything else is good.py.
"""

import good

_env_int = good.env_int


def lenient_env_int(name, default, minimum=0):
    try:
        return _env_int(name, default, minimum)
    except good.ConfigError:
        return default  # the mistake: swallow the error


good.env_int = lenient_env_int

if __name__ == "__main__":
    good.main()
