"""Options and steps that several sub-commands share."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import TextIO

from vfl.errors import InputDataError
from vfl.files import sync_folder

__all__ = [
    "DefaultsHelpFormatter",
    "add_data_options",
    "add_force_option",
    "check_outputs",
    "dumps",
    "feature_holder_names",
    "party_inputs",
    "write_outputs",
]


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows an option's default where it has one worth reading.

    argparse's formatter appends ``(default: ...)`` to every option, also to
    required ones (``None``), to flags (``False``), to repeatable ones (``[]``)
    and after a help text that already says its default.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False, []) or "default" in text:
            return text
        return super()._get_help_string(action)


def add_data_options(parser: argparse.ArgumentParser, *, label: bool) -> None:
    """--party-a (repeatable), --party-b, --id-column and maybe --label-column."""
    parser.add_argument("--party-a", action="append", required=True, metavar="CSV",
                        help="feature holder's CSV file (ID and feature columns); repeat it "
                             "once per feature holder (A1, A2, ... in the order given)")
    parser.add_argument("--party-b", required=True, metavar="CSV",
                        help="label holder's CSV file (ID, label and feature columns)")
    parser.add_argument("--id-column", required=True, metavar="NAME",
                        help="column holding the IDs in every file")
    if label:
        parser.add_argument("--label-column", required=True, metavar="NAME",
                            help="label column in the label holder's file")


def party_inputs(party_b: str, party_a: list[str]) -> dict[str, str]:
    """Each party's input file by name (B, A1, A2, ...); one file may not serve two parties.

    Raises
    ------
    InputDataError
        If two parties are given the same file: their columns would count
        twice, and the "federation" would be one party's data.
    """
    inputs = dict(zip(["B", *feature_holder_names(len(party_a))], [party_b, *party_a]))
    seen: dict[str, str] = {}
    for party, path in inputs.items():
        real = os.path.realpath(path)
        if real in seen:
            raise InputDataError(f"parties {seen[real]} and {party} are both given {path}; "
                                 "each party needs its own file", party=party)
        seen[real] = party
    return inputs


def feature_holder_names(count: int) -> list[str]:
    """A1, A2, ... for the given number of feature holders."""
    return [f"A{k}" for k in range(1, count + 1)]


#: An output: its text, its bytes (an image), or a function that writes it to an open text file.
Content = str | bytes | Callable[[TextIO], None]


def add_force_option(parser: argparse.ArgumentParser, what: str = "output files") -> None:
    """--force: replace files an earlier run left (every command refuses by default)."""
    parser.add_argument("--force", action="store_true",
                        help=f"replace {what} left by an earlier run (default: refuse)")


def check_outputs(out_dir: str, names: Iterable[str],
                  inputs: Mapping[str, str] | Iterable[str], *, force: bool,
                  option: str = "--out") -> None:
    """Refuse, before any work, outputs that cannot or must not be written.

    An output that would replace an input file (even with `force`), a file
    left by an earlier run (without `force`), a folder where a file goes, an
    `out_dir` that is a file, or a place this user cannot write to.

    Parameters
    ----------
    inputs : mapping of party name to path, or paths
        The command's input files (named by party in messages when given so).

    Raises
    ------
    InputDataError
        Naming the path and what to do.
    """
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputDataError(f"{option} {out_dir} exists and is not a folder; choose another")
    owners = (dict(inputs) if isinstance(inputs, Mapping)
              else {f"file {path}": path for path in inputs})
    sources = {os.path.realpath(path): owner for owner, path in owners.items()}
    for name in names:
        target = os.path.join(out_dir, name)
        owner = sources.get(os.path.realpath(target))
        if owner is not None:
            of = owner if owner.startswith("file ") else f"party {owner}"
            raise InputDataError(f"the output {target} would overwrite the input file of "
                                 f"{of}; choose another {option}")
        if os.path.isdir(target):
            raise InputDataError(f"the output {target} is a folder; choose another {option}")
        if os.path.lexists(target) and not force:
            raise InputDataError(f"{target} already exists (an earlier run's?); pass --force "
                                 f"to replace it or choose another {option}")
    existing = out_dir or "."
    while not os.path.exists(existing):
        existing = os.path.dirname(os.path.abspath(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputDataError(f"cannot write to {existing} (permission denied); choose another "
                             f"{option}")


def write_outputs(out_dir: str, files: Mapping[str, Content],
                  inputs: Mapping[str, str] | Iterable[str], *,
                  force: bool = False, option: str = "--out",
                  before_publish: Callable[[], None] | None = None) -> None:
    """Write every output into `out_dir`, all or none, replacing nothing without `force`.

    Every file is first written in full to a temporary file in `out_dir`
    (flushed to disk); only then do they all appear under their names. Without
    `force` a name is claimed with a hard link, which fails if another run
    created it meanwhile, so two runs into one folder never overwrite each
    other. On any failure the files of this run are removed: nothing is left
    half-written.

    Parameters
    ----------
    before_publish : callable, optional
        Called once every file is staged, before any appears (e.g. to append
        the signed audit record: outputs appear only if it succeeds).

    Raises
    ------
    InputDataError
        See :func:`check_outputs`; also if the folder cannot be created or a
        file cannot be written (naming what was and was not written).
    """
    inputs = dict(inputs) if isinstance(inputs, Mapping) else list(inputs)
    check_outputs(out_dir, files, inputs, force=force, option=option)
    try:
        os.makedirs(out_dir or ".", exist_ok=True)
    except OSError as exc:
        raise InputDataError(f"cannot create {option} folder {out_dir}: {exc}") from None
    umask = os.umask(0)
    os.umask(umask)
    staged: dict[str, str] = {}
    published: list[str] = []
    try:
        for name, content in files.items():
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=out_dir or ".")
            staged[name] = tmp
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600, widened as far as the umask allows
            if isinstance(content, bytes):  # an image, say
                with os.fdopen(fd, "wb") as binary:
                    binary.write(content)
                    binary.flush()
                    os.fsync(binary.fileno())
                continue
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                if isinstance(content, str):
                    handle.write(content)
                else:
                    content(handle)
                handle.flush()
                os.fsync(handle.fileno())
        if before_publish is not None:
            before_publish()
        for name, tmp in staged.items():
            _publish(tmp, os.path.join(out_dir, name), force=force, option=option)
            published.append(name)
        sync_folder(out_dir or ".")
    except BaseException as exc:
        for tmp in staged.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        if not force:  # this run's own files; with force they replaced older ones
            for name in published:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(out_dir, name))
        if isinstance(exc, OSError):
            raise InputDataError(f"cannot write the outputs to {out_dir or '.'}: {exc}; "
                                 "nothing was written") from None
        raise


def _publish(tmp: str, target: str, *, force: bool, option: str) -> None:
    """Give a staged file its name: replace only with `force`, else claim it atomically."""
    if force:
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise InputDataError(f"{target} appeared while this run was working (another run "
                             f"into the same folder?); pass --force to replace it or choose "
                             f"another {option}") from None
    except OSError:
        # A file system without hard links: the check just before is the best we have.
        if os.path.lexists(target):
            raise InputDataError(f"{target} already exists; pass --force to replace it or "
                                 f"choose another {option}") from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def dumps(data: object) -> str:
    """JSON text of a report, stable and readable."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
