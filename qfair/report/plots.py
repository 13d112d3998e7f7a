"""An HTML template for ``dvc plots show/diff`` that renders offline.

DVC's default page loads vega, vega-lite and vega-embed from a CDN, so it is blank without a
network. This template inlines the three libraries, fetched once from npm as tarballs pinned by
sha256 (never installed), and keeps DVC's ``{plot_divs}`` placeholder; ``.dvc/config`` points
``plots.html_template`` at it.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass

from qfair.corpus.fetch import fetch_npm


@dataclass(frozen=True)
class NpmScript:
    package: str
    version: str
    sha256: str
    member: str


# Major versions match the Vega-Lite v5 specs that DVC 3 writes.
VEGA_SCRIPTS = (
    NpmScript("vega", "5.33.0", "7b61f992d1a1e196e7f2eeb3d6176e5694949d0d4bbfea237a842d523dd6e1f3",
              "package/build/vega.min.js"),
    NpmScript("vega-lite", "5.23.0", "e4cbfdd8f6f1abe381c59cd558fd6a559c12b1496bfdf2e0c3295263a40fe4da",
              "package/build/vega-lite.min.js"),
    NpmScript("vega-embed", "6.29.0", "ecf1ee709c2bac9e0a4ead6908114b05b62c71493e10a8a4308109bb070f8eb1",
              "package/build/vega-embed.min.js"),
)

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
{refresh_tag}
<title>qfair: DVC plots</title>
<!-- vega, vega-lite and vega-embed inlined (offline); written by the plots_template stage -->
%(scripts)s
<style>
body { font-family: sans-serif; }
table { border-spacing: 15px; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def read_script(script: NpmScript) -> str:
    """The library's minified JavaScript from its pinned npm tarball."""
    archive = fetch_npm(script.package, script.version, script.sha256, f"plots.{script.package}")
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile(script.member)
        if member is None:
            raise FileNotFoundError(f"{script.package}@{script.version}: no {script.member}")
        return member.read().decode("utf-8")


def offline_template(sources: list[str]) -> str:
    """The page with each JavaScript source inlined in its own ``<script>`` element."""
    blocks = []
    for source in sources:
        # An inline script ends at the first "</script"; keep the code from closing it early.
        blocks.append("<script>\n" + source.replace("</script", "<\\/script") + "\n</script>")
    page = PAGE % {"scripts": "\n".join(blocks)}
    if "{plot_divs}" not in page:
        raise ValueError("template lost DVC's {plot_divs} placeholder")
    return page
