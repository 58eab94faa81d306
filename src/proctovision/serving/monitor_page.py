"""GET /monitor: the monitoring page of ``serve --monitor`` (en-US and zh-CN), and POST
/monitor/alarms/{id}/ack. Under ``--auth`` the page needs a signed-in account, and only an admin acknowledges
(with the session's CSRF token); without it, alarms are acknowledged with ``proctovision monitor ack``.

Figures come from reporting as inline SVG: the page shows the same drawings as the surveillance report.
"""
from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from proctovision.core import i18n
from proctovision.monitoring.folder import Monitor
from proctovision.monitoring.store import MonitorError
from proctovision.monitoring.summary import chart_data, status
from proctovision.reporting.monitoring_figures import FIGURES, svg
from proctovision.serving.auth import Authenticator, require_session, sign_in_page
from proctovision.serving.pages import page_language, render_page


class Acknowledgement(BaseModel):
    note: str = Field(min_length=1, max_length=2000)


def page_html(monitor: Monitor, language: str, signed_in: str | None, can_acknowledge: bool) -> str:
    document = status(monitor)
    data = chart_data(monitor)
    figures = {name: svg(name, data, language) for name in FIGURES}
    return render_page(language, tuple(monitor.classes), "monitor.html", status=document, figures=figures,
                       signed_in=signed_in, can_acknowledge=can_acknowledge,
                       ci_label=i18n.gettext_for(language)("95% CI"))


def add_monitor_page(app: FastAPI, monitor: Monitor, auth: Authenticator | None = None) -> None:
    @app.get("/monitor", include_in_schema=False)
    async def monitor_page(request: Request, lang: str | None = None) -> HTMLResponse:
        signed = auth.session(request.cookies.get(auth.cookie_name)) if auth is not None else None
        if auth is not None and signed is None:
            return sign_in_page(request, 401)
        language = page_language(lang, request.headers.get("accept-language"))
        html = await run_in_threadpool(page_html, monitor, language, signed.name if signed else None,
                                       signed is not None and signed.role == "admin")
        return HTMLResponse(html, headers={"Content-Language": language, "Vary": "Accept-Language",
                                           "Cache-Control": "no-store"})

    @app.post("/monitor/alarms/{alarm_id}/ack", include_in_schema=False)
    async def acknowledge(alarm_id: int, body: Acknowledgement, request: Request) -> dict:
        if auth is None:
            raise HTTPException(403, "acknowledge alarms with `proctovision monitor ack` (the page does it under "
                                     "serve --auth, for admins)")
        signed = require_session(auth, request)
        if signed.role != "admin":
            raise HTTPException(403, "only an administrator can acknowledge an alarm")
        try:
            return await run_in_threadpool(monitor.acknowledge, alarm_id, body.note, signed.name)
        except MonitorError as error:
            raise HTTPException(409 if "already" in str(error) else 404, str(error)) from error
