"""The keyword parameters every estimator shares: a config dataclass's fields, plus run keywords.

scikit-learn's contract: the constructor only stores (and here checks) its
keywords; ``get_params``/``set_params`` list and change them; the options
themselves are the fields of one typed config dataclass, so an estimator's
keywords, defaults and checks are derived from it, never written twice.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar

__all__ = ["ConfigEstimator"]


class ConfigEstimator:
    """Base of the estimators (vertical, horizontal, transfer).

    Subclasses set :attr:`_config_type` (the options' dataclass) and
    :attr:`_runtime` (other keywords with their defaults: key size, timeouts,
    progress display); :meth:`_fixed` gives the config fields the class itself
    decides (the vertical model kind).
    """

    _config_type: ClassVar[type]
    _runtime: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        options = self._option_names()
        unknown = set(params) - set(options) - set(self._runtime)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown parameter(s) "
                            f"{', '.join(sorted(unknown))}; its options are "
                            f"{', '.join(options)}; the others are "
                            f"{', '.join(self._runtime)}")
        for name, default in {**self._option_defaults(), **self._runtime}.items():
            setattr(self, name, params.get(name, default))
        self._check()

    @classmethod
    def _fixed(cls) -> dict[str, Any]:
        """Config fields the class decides, not the caller."""
        return {}

    @classmethod
    def _option_names(cls) -> list[str]:
        return [f.name for f in fields(cls._config_type) if f.name not in cls._fixed()]

    @classmethod
    def _option_defaults(cls) -> dict[str, Any]:
        return {f.name: f.default for f in fields(cls._config_type)
                if f.name not in cls._fixed()}

    def _check(self) -> None:
        """Validate now, not at fit time (the config's own checks)."""
        self.config  # noqa: B018

    @property
    def config(self) -> Any:
        """The options as their config dataclass (checked when built)."""
        return self._config_type(**self._fixed(),
                                 **{name: getattr(self, name) for name in self._option_names()})

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention)."""
        return {name: getattr(self, name) for name in (*self._option_names(), *self._runtime)}

    def set_params(self, **params: Any) -> ConfigEstimator:
        """Change constructor parameters (checked at once)."""
        type(self).__init__(self, **{**self.get_params(), **params})
        return self

    def __repr__(self) -> str:
        defaults = {**self._option_defaults(), **self._runtime}
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                            if v != defaults[k])
        return f"{type(self).__name__}({changed})"
