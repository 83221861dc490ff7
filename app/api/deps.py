"""Annotated dependencies shared by the endpoint modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.config import Settings
from app.sources.jm import JmSource


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_jm(request: Request) -> JmSource:
    jm: JmSource = request.app.state.jm
    return jm


SettingsDep = Annotated[Settings, Depends(get_settings)]
JmDep = Annotated[JmSource, Depends(get_jm)]
