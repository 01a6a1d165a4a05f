"""Connecting to the MQTT broker: one place for credentials, TLS and what a failure means.

Every MQTT client of the bridge (the sink, band presence, the ingest worker, alerts,
Home Assistant) is made by ``mqtt_client`` from the ``[mqtt]`` config, so a new
setting (a CA file, a client certificate) reaches all of them at once.
"""

from __future__ import annotations

import logging
import ssl

import aiomqtt

from host.config import MqttSection


def mqtt_client(
    cfg: MqttSection,
    identifier: str,
    will: aiomqtt.Will | None = None,
    clean_session: bool | None = None,
) -> aiomqtt.Client:
    """An aiomqtt client for ``cfg`` (not yet connected: use it with ``async with``)."""
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        identifier=identifier,
        username=cfg.username or None,
        password=cfg.password or None,
        will=will,
        clean_session=clean_session,
        keepalive=cfg.keepalive_s,
        tls_context=tls_context(cfg),
        timeout=10,
    )


def tls_context(cfg: MqttSection) -> ssl.SSLContext | None:
    """The TLS context for ``mqtt.tls``: the system CAs or ``mqtt.ca_file``, and a client cert."""
    if not cfg.tls:
        return None
    ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    return ctx


def connect_problem(cfg: MqttSection, e: Exception) -> tuple[int, str]:
    """Log level and message for a broker connection that failed: say what to check."""
    text = str(e)
    low = text.lower()
    where = f"{cfg.host}:{cfg.port}"
    if "not authori" in low or "bad user name or password" in low or "code:5" in low:
        who = f"user {cfg.username!r}" if cfg.username else "no username (anonymous)"
        return logging.ERROR, (
            f"broker {where} refused the credentials ({who}): {text}; check mqtt.username and "
            "SPASM_MQTT_PASSWORD / mqtt.password_file"
        )
    if "certificate" in low or "ssl" in low or "tls" in low or "wrong version number" in low:
        return logging.ERROR, (
            f"TLS with broker {where} failed: {text}; check mqtt.tls and mqtt.ca_file "
            "(the CA that signed the broker's certificate) and that the broker's name matches "
            "mqtt.host"
        )
    return logging.WARNING, f"connection to {where} lost or refused: {text}"
