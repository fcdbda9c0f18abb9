"""Every exception the library raises on purpose.

Each class also derives from the built-in exception a Python user would
expect (``ValueError`` for a bad value, ``TypeError`` for a wrong type,
``OverflowError`` for a value out of range, ``TimeoutError`` for silence), so
``except ValueError`` keeps working while tests can check the precise class.

Messages start with the party they concern ("party B (label holder): ...")
and end with what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AddressInUseError",
    "AuditKeyError",
    "AuditLogError",
    "BatchTooSmallError",
    "BinningFileError",
    "BrokenChainError",
    "CertificateFileError",
    "ChannelTimeoutError",
    "CheckpointError",
    "ClusterError",
    "ClusterUnreachableError",
    "ConfigError",
    "ConfigFileError",
    "ConfigMismatchError",
    "DuplicateIDError",
    "EmptyIntersectionError",
    "EncodingOverflowError",
    "InputDataError",
    "InsecureBackendError",
    "InsecureKeyError",
    "InsecureSeedWarning",
    "InvalidCiphertextError",
    "InvalidFeatureError",
    "InvalidIDError",
    "InvalidLabelError",
    "InvalidWeightError",
    "LabelInFeatureHolderError",
    "MalformedMessageError",
    "MalformedRecordError",
    "MissingColumnError",
    "ModelFileError",
    "PeerAbortedError",
    "PeerAuthenticationError",
    "PeerLeftError",
    "PeerUnreachableError",
    "ProtocolError",
    "RecordMismatchError",
    "SignatureError",
    "TamperedRecordError",
    "TrainingDivergedError",
    "UnexpectedMessageError",
    "UntrustedKeyError",
    "VFLError",
    "WireFormatError",
]


class VFLError(Exception):
    """Base class of every error this library raises deliberately.

    Parameters
    ----------
    message : str
        What went wrong and what to do about it.
    party : str or None
        Name of the party the error concerns (``"A1"``, ``"B"``, ``"C"``), put
        in front of the message so a user running three parties knows where
        to look.
    """

    def __init__(self, message: str, *, party: str | None = None) -> None:
        self.party = party
        super().__init__(f"party {party}: {message}" if party else message)


# --- input data -------------------------------------------------------------


class InputDataError(VFLError, ValueError):
    """A party's input table cannot be used as it is."""


class MissingColumnError(InputDataError):
    """A column the configuration names is not in the party's table."""


class InvalidIDError(InputDataError):
    """An ID is missing (empty or NaN) or cannot be normalised."""


class DuplicateIDError(InputDataError):
    """The same ID appears on more than one row of one party's table."""


class EmptyIntersectionError(InputDataError):
    """The parties share no ID, or too few to train on."""


class InvalidFeatureError(InputDataError):
    """A feature column is non-numeric, constant, or holds NaN or infinity."""


class InvalidLabelError(InputDataError):
    """The label column is non-numeric or holds NaN or infinity."""


class InvalidWeightError(InputDataError):
    """The label holder's sample-weight or exposure column is non-numeric, negative
    (exposure: not positive), NaN or infinite, or every weight is zero."""


class LabelInFeatureHolderError(InputDataError):
    """A feature holder's table contains the label column.

    Only the label holder may hold the label; a copy at a feature holder
    would defeat the protocol's protection of ``y``.
    """


class ConfigError(VFLError, ValueError):
    """A training option is invalid, or options are combined in a way that cannot work."""


class InsecureSeedWarning(UserWarning):
    """A party was given a seed: its secrets (initial weights) become predictable to
    anyone who guesses it. For tests and reproducible examples only."""


class DataPrecisionWarning(UserWarning):
    """Raw (unstandardised) columns vary on a scale close to the data's fixed-point
    grid: rounding them to it loses more of their detail than a standardised
    column loses."""


class TrainingDivergedError(VFLError, ArithmeticError):
    """Training moved away from a solution (loss growing without bound, scores out
    of range); nothing is saved as if the model were fine."""


class BatchTooSmallError(VFLError, ValueError):
    """A mini-batch is too small for a party's number of features.

    With ``m <= d`` rows in a batch, the ``d`` gradient equations a party
    receives can be solved for the ``m`` residuals, hence the labels.
    """


# --- keys, encoding, ciphertexts --------------------------------------------


class InsecureKeyError(VFLError, ValueError):
    """A Paillier key below 2048 bits was asked for without ``insecure=True``."""


class InsecureBackendError(VFLError, ValueError):
    """The plaintext engine (``backend="plain"``) was asked for or announced without
    the party's own ``insecure_plaintext`` opt-in."""


class EncodingOverflowError(VFLError, OverflowError):
    """A value, or a sum of products of values, would not fit the encoding.

    Raised before any result could wrap around the modulus ``n``, never after.
    """


class InvalidCiphertextError(VFLError, ValueError):
    """A received ciphertext is not an element of Z*_{n^2}."""


# --- protocol and transport -------------------------------------------------


class ProtocolError(VFLError):
    """A party deviated from the protocol, or a message cannot be accepted."""


class UnexpectedMessageError(ProtocolError):
    """A message arrived that does not fit the step the receiver is at."""


class ConfigMismatchError(ProtocolError, ValueError):
    """Parties were started with different training configurations."""


class MalformedMessageError(ProtocolError, ValueError):
    """A message fits the step but its content does not: wrong length, missing value.

    Raised by the receiver, naming the sender and the message; a peer that
    sends it is faulty or hostile, and the run stops.
    """


class PeerAbortedError(ProtocolError):
    """Another party stopped with an error; this party stops too."""


class PeerLeftError(PeerAbortedError):
    """A peer that may leave the run (a horizontal client) stopped: only the link to it
    ends, and the protocol goes on without it."""


class ChannelTimeoutError(ProtocolError, TimeoutError):
    """A peer sent nothing within the configured timeout."""


# --- persistence -----------------------------------------------------------


class ModelFileError(VFLError, ValueError):
    """A saved model part is missing, unreadable or belongs to another party."""


class BinningFileError(VFLError, ValueError):
    """A binning or scorecard file is missing, unreadable, damaged, another party's, or
    of another run than the other files (or columns) it is used with."""


# --- audit log ---------------------------------------------------------------


class AuditKeyError(VFLError, ValueError):
    """A party's signing key file is missing, unreadable, or would be overwritten."""


class AuditLogError(VFLError, ValueError):
    """The audit log cannot be read, extended or trusted.

    Parameters
    ----------
    message : str
    index : int or None
        Index of the record concerned, when known.
    line : int or None
        1-based line of the log file holding it, when known.
    party : str or None
    """

    def __init__(self, message: str, *, index: int | None = None, line: int | None = None,
                 party: str | None = None) -> None:
        self.index = index
        self.line = line
        if index is not None and line is not None:
            message = f"record {index} (line {line}): {message}"
        elif index is not None or line is not None:
            message = (f"record {index}" if index is not None else f"line {line}") + \
                f": {message}"
        super().__init__(message, party=party)


class MalformedRecordError(AuditLogError):
    """A log line is not a complete, well-formed record (for instance a truncated line)."""


class TamperedRecordError(AuditLogError):
    """A record's content no longer matches the hash stored in it."""


class BrokenChainError(AuditLogError):
    """A record does not follow the one before it (previous hash or index)."""


class SignatureError(AuditLogError):
    """A required signature is missing, invalid, or made with a key other than the pinned one."""


class UntrustedKeyError(AuditLogError):
    """A key the log pins is not in the verifier's trusted keyring."""


class RecordMismatchError(AuditLogError):
    """A draft does not hold what the signing party computed itself, so it will not sign."""


# --- network transport ------------------------------------------------------


class WireFormatError(ProtocolError, ValueError):
    """Received bytes are not a well-formed envelope: truncated, corrupted, or
    naming a type that may not be decoded."""


class AddressInUseError(VFLError, OSError):
    """A party cannot listen on its configured address (in use, or not this machine's)."""


class PeerUnreachableError(ProtocolError, ConnectionError):
    """A peer could not be reached at its address before the retry deadline."""


class PeerAuthenticationError(ProtocolError, PermissionError):
    """A peer's TLS identity is not the party it claims or is expected to be."""


class CertificateFileError(VFLError, ValueError):
    """A certificate or key file is missing, unreadable or names another party."""


# --- running one party: configuration files and checkpoints -------------------


class ConfigFileError(ConfigError):
    """A party's configuration file is missing, not TOML, or holds an unknown or bad key."""


class CheckpointError(VFLError, ValueError):
    """A checkpoint is unreadable, damaged, or belongs to another run, configuration or data."""


# --- a party's compute cluster (Dask or Ray) -----------------------------------


class ClusterError(VFLError, ConnectionError):
    """A party's compute cluster (the ``executor`` setting) stopped working mid-run:
    its scheduler went away, no worker was left, or a task failed on every worker
    it was retried on. No result of the failed step is used."""


class ClusterUnreachableError(ClusterError):
    """A party's compute cluster cannot be reached at its address, or has no workers,
    within the connection timeout; nothing was computed."""
