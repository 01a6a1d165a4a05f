"""The bleak backend classes ``ble.backend`` and ``ble.scanner_backend`` name.

``bleak`` (or empty) means bleak's own for this platform. Otherwise each is
``module:Class``, or a module holding exactly one subclass of bleak's base client
(or scanner) class; a scanner not named is found next to the client, in its module
or its package. Anything else is a ConfigError naming the key.
"""

from __future__ import annotations

import importlib
from typing import Any

from host.config import BleSection, ConfigError


def _import_attr(key: str, spec: str) -> Any:
    mod_name, _, attr = spec.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ConfigError(f"{key}: cannot import {mod_name}: {e}") from None
    if not attr:
        return mod
    try:
        return getattr(mod, attr)
    except AttributeError:
        raise ConfigError(f"{key}: {mod_name} has no {attr}") from None


def _find_subclass(key: str, mod: Any, base: type) -> type:
    found = [
        v
        for v in vars(mod).values()
        if isinstance(v, type) and issubclass(v, base) and v is not base
    ]
    if len(found) != 1:
        raise ConfigError(
            f"{key}: {mod.__name__} must define exactly one {base.__name__} subclass "
            f"(found {len(found)}); name the class as module:Class"
        )
    return found[0]


def resolve_backends(ble: BleSection) -> tuple[type | None, type | None]:
    """Return the (client, scanner) classes for bleak's ``backend=``; None = bleak's own."""
    from bleak.backends.client import BaseBleakClient
    from bleak.backends.scanner import BaseBleakScanner

    if ble.backend in ("", "bleak"):
        if ble.scanner_backend:
            raise ConfigError("ble.scanner_backend: only meaningful with a custom ble.backend")
        return None, None
    obj = _import_attr("ble.backend", ble.backend)
    client = obj if isinstance(obj, type) else _find_subclass("ble.backend", obj, BaseBleakClient)
    if not issubclass(client, BaseBleakClient):
        raise ConfigError(f"ble.backend: {ble.backend} is not a BaseBleakClient subclass")
    if ble.scanner_backend:
        scanner = _import_attr("ble.scanner_backend", ble.scanner_backend)
        if not (isinstance(scanner, type) and issubclass(scanner, BaseBleakScanner)):
            raise ConfigError(
                f"ble.scanner_backend: {ble.scanner_backend} is not a BaseBleakScanner subclass"
            )
    else:
        home = importlib.import_module(client.__module__)
        try:
            scanner = _find_subclass("ble.backend", home, BaseBleakScanner)
        except ConfigError:
            pkg = importlib.import_module(client.__module__.rpartition(".")[0] or home.__name__)
            scanner = _find_subclass("ble.scanner_backend", pkg, BaseBleakScanner)
    return client, scanner
