"""How every command line of the package behaves, wherever it lives (``emseg``, ``python -m ...``, a worker).

A user error is one ``error: ...`` line with exit status 2; plugin warnings are one plain line;
third-party chatter that says nothing to a user is silenced.
"""
from __future__ import annotations

import argparse
import errno
import logging
import sys
import traceback
import warnings
from collections.abc import Callable

from emseg_plugins.errors import EmsegError, PluginWarning

EXIT_USER_ERROR = 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a command-line mistake reported like every other: one ``error:`` line, status 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def run_command(body: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run ``body(args)``; a user error prints ``error: ...`` on one line and returns 2."""
    try:
        return body(args) or 0
    except EmsegError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        if getattr(args, "debug", False):
            traceback.print_exc()
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: no space left on the device{where}; files already written are complete (atomic writes): "
              "free space and run the same command again to resume", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, PluginWarning):
        print(f"warning: {message}", file=file or sys.stderr)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


_default_showwarning = warnings.showwarning


def plain_plugin_warnings() -> None:
    """Show :class:`PluginWarning` as one ``warning: ...`` line (other warnings as Python shows them)."""
    warnings.showwarning = _show_warning


def quiet_library_warnings() -> None:
    """Silence third-party chatter that says nothing to a user of this tool."""
    for pattern in (".*does not have many workers.*", ".*is not a valid hook.*", ".*Checkpoint directory .* exists and is not empty.*",
                    ".*The number of training batches.*", ".*`isinstance\\(treespec, LeafSpec\\)`.*",
                    ".*your dataloader is not resumable.*"):  # the data module resumes by step itself
        warnings.filterwarnings("ignore", message=pattern)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(lambda record: "litlogger" not in record.getMessage())
