"""Horizontal federated learning: clients with the same columns, a server, a key holder.

See ``docs/horizontal.md`` for the protocol. The notebook surface is
:class:`HorizontalClient` and :class:`FederatedAveraging`; the roles
(:class:`Client`, :class:`Server`, :class:`KeyHolder`) run on the shared
runtime (:mod:`vfl.runtime`).
"""

from parties.horizontal.client import Client
from parties.horizontal.config import HorizontalConfig
from parties.horizontal.estimators import FederatedAveraging
from parties.horizontal.federation import HorizontalClient, HorizontalFederation
from parties.horizontal.key_holder import KeyHolder
from parties.horizontal.partition import dirichlet_label_skew, quantity_skew, split_by_column
from parties.horizontal.server import Server

__all__ = [
    "Client",
    "FederatedAveraging",
    "HorizontalClient",
    "HorizontalConfig",
    "HorizontalFederation",
    "KeyHolder",
    "Server",
    "dirichlet_label_skew",
    "quantity_skew",
    "split_by_column",
]
