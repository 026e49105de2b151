"""The remote MCP servers behind the sandbox registry's entries: small real servers (the official
SDK's MCPServer over Streamable HTTP, stateless, both protocol eras) with made-up but stable
data, so that a newcomer with SANDBOX=1 can install an entry, fetch its tools, approve them and
call them. Each runs under uvicorn in a thread of the sandbox process, on 127.0.0.1.

The SDK is imported when they start, not with this module (run_sandbox imports every sandbox).
"""

# No `from __future__ import annotations`: the SDK reads the tools' annotations at run time,
# and their models are local to the builders.
import hashlib
import threading
import time
from typing import Any

# registry entry name -> the builder of its server
NAMES = ("io.example/weather", "io.example/translate", "io.example/holidays", "io.example/postcodes")

SKIES = ("sunny", "cloudy", "rain", "showers", "fog", "snow")
WORDS = {
    ("hello", "de"): "hallo",
    ("hello", "fr"): "bonjour",
    ("thank you", "de"): "danke",
    ("thank you", "fr"): "merci",
    ("appointment", "de"): "Termin",
    ("appointment", "fr"): "rendez-vous",
    ("good morning", "de"): "guten Morgen",
    ("good morning", "fr"): "bonjour",
}
HOLIDAYS = {
    "DE": [("01-01", "Neujahr"), ("05-01", "Tag der Arbeit"), ("10-03", "Tag der Deutschen Einheit"),
           ("12-25", "1. Weihnachtstag"), ("12-26", "2. Weihnachtstag")],
    "AT": [("01-01", "Neujahr"), ("05-01", "Staatsfeiertag"), ("10-26", "Nationalfeiertag"),
           ("12-25", "Christtag"), ("12-26", "Stefanitag")],
    "CH": [("01-01", "Neujahrstag"), ("08-01", "Bundesfeier"), ("12-25", "Weihnachtstag")],
}  # fmt: skip
POSTCODES = {
    "10115": ("Berlin", "Berlin"),
    "20095": ("Hamburg", "Hamburg"),
    "50667": ("Köln", "Nordrhein-Westfalen"),
    "60311": ("Frankfurt am Main", "Hessen"),
    "80331": ("München", "Bayern"),
}


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).lower().encode()).hexdigest()[:8], 16)


def _weather():
    from mcp.server import MCPServer
    from mcp.types import ToolAnnotations
    from pydantic import BaseModel, Field

    class Day(BaseModel):
        day: int
        sky: str
        high_c: int
        low_c: int

    class Forecast(BaseModel):
        city: str
        days: list[Day]

    server = MCPServer("sandbox-weather", version="1.1.0")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def forecast(
        city: str = Field(min_length=1, max_length=80), days: int = Field(3, ge=1, le=7)
    ) -> Forecast:
        """The forecast for a city, day by day (made-up sandbox data, stable per city)."""
        rows = []
        for n in range(days):
            seed = _seed(city, str(n))
            low = seed % 15 - 2
            rows.append(Day(day=n + 1, sky=SKIES[seed % len(SKIES)], high_c=low + 4 + seed % 9, low_c=low))
        return Forecast(city=city, days=rows)

    return server


def _translate():
    from mcp.server import MCPServer
    from mcp.types import ToolAnnotations
    from pydantic import BaseModel, Field

    class Translation(BaseModel):
        text: str
        target: str
        translated: str
        known: bool

    server = MCPServer("sandbox-translate", version="0.4.2")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def translate(
        text: str = Field(min_length=1, max_length=500), target: str = Field(pattern="^(de|fr)$")
    ) -> Translation:
        """Translate a short phrase to German (de) or French (fr); the sandbox knows a few phrases."""
        found = WORDS.get((text.strip().lower(), target))
        return Translation(text=text, target=target, translated=found or text, known=found is not None)

    return server


def _holidays():
    from mcp.server import MCPServer
    from mcp.types import ToolAnnotations
    from pydantic import BaseModel, Field

    class Holiday(BaseModel):
        date: str
        name: str

    class Holidays(BaseModel):
        country: str
        year: int
        holidays: list[Holiday]

    server = MCPServer("sandbox-holidays", version="2.0.0")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def holidays(
        country: str = Field(pattern="^(DE|AT|CH)$"), year: int = Field(ge=2000, le=2100)
    ) -> Holidays:
        """The fixed-date public holidays of a country (DE, AT or CH) in a year."""
        days = [Holiday(date=f"{year}-{md}", name=name) for md, name in HOLIDAYS[country]]
        return Holidays(country=country, year=year, holidays=days)

    return server


def _postcodes():
    from mcp.server import MCPServer
    from mcp.types import ToolAnnotations
    from pydantic import Field

    server = MCPServer("sandbox-postcodes", version="1.2.0")

    @server.tool(structured_output=False, annotations=ToolAnnotations(read_only_hint=True))
    def lookup(postcode: str = Field(pattern=r"^\d{5}$")) -> str:
        """The town and state of a German postcode, as text (the sandbox knows a handful)."""
        found = POSTCODES.get(postcode)
        return f"{postcode}: {found[0]} ({found[1]})" if found else f"{postcode}: unknown postcode"

    return server


BUILDERS = {
    "io.example/weather": _weather,
    "io.example/translate": _translate,
    "io.example/holidays": _holidays,
    "io.example/postcodes": _postcodes,
}


class SandboxRemotes:
    """The remote MCP servers, each on its own port: consecutive ports from `first_port`
    (stable addresses for registrations installed earlier), or free ports with 0."""

    def __init__(self, host: str = "127.0.0.1", first_port: int = 0) -> None:
        self.host, self.first_port = host, first_port
        self.urls: dict[str, str] = {}
        self._servers: list[tuple[Any, threading.Thread]] = []

    def start(self) -> dict[str, str]:
        import uvicorn

        try:
            for n, name in enumerate(NAMES):
                app = BUILDERS[name]().streamable_http_app(stateless_http=True, json_response=True)
                port = self.first_port + n if self.first_port else 0
                config = uvicorn.Config(app, host=self.host, port=port, log_level="warning", access_log=False)
                server = uvicorn.Server(config)
                thread = threading.Thread(target=server.run, name=f"sandbox-{name}", daemon=True)
                thread.start()
                self._servers.append((server, thread))
                deadline = time.monotonic() + 20
                while not server.started:
                    if not thread.is_alive() or time.monotonic() > deadline:
                        raise OSError(f"{name}: the sandbox MCP server did not start on {self.host}:{port}")
                    time.sleep(0.02)
                bound = server.servers[0].sockets[0].getsockname()[1]
                self.urls[name] = f"http://{self.host}:{bound}/mcp"
        except BaseException:
            self.stop()
            raise
        return self.urls

    def stop(self) -> None:
        for server, _ in self._servers:
            server.should_exit = True
        for _, thread in self._servers:
            thread.join(5)
        self._servers.clear()
