"""Atelier Lumière: a tiny shop. Plain WSGI, PostgreSQL through psycopg 3, served by gunicorn.

Environment: DATABASE_URL (secret), SHOP_NAME, UPLOAD_DIR.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import threading
from decimal import Decimal, InvalidOperation
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from urllib.parse import parse_qs, quote

import psycopg

SHOP_NAME = os.environ.get("SHOP_NAME", "Shop")
UPLOAD_DIR = Path(os.environ.get("UPLOAD_DIR", "/srv/site/uploads"))
MAX_BODY = 10 * 1024 * 1024
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price       numeric(10, 2) NOT NULL CHECK (price >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
)
"""

_schema_ready = False
_schema_lock = threading.Lock()


def connect() -> psycopg.Connection:
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set")
    return psycopg.connect(url, connect_timeout=3, autocommit=True)


def ensure_schema() -> None:
    """Create the products table if missing (once per process, retried until it works)."""
    global _schema_ready
    if _schema_ready:
        return
    with _schema_lock:
        if not _schema_ready:
            with connect() as conn:
                conn.execute(SCHEMA)
            _schema_ready = True


try:  # on start; if the database is down the site still starts and says so on /healthz
    ensure_schema()
except Exception as exc:  # noqa: BLE001
    print(f"database not ready at start: {exc.__class__.__name__}", flush=True)


def page(title: str, body: str) -> bytes:
    name = html.escape(SHOP_NAME)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · {name}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}}
form{{margin:1.5rem 0;padding:1rem;background:#f6f6f3;border-radius:.5rem}}</style></head>
<body><h1>{name}</h1>{body}</body></html>""".encode()


def respond(start_response, status: str, body: bytes, content_type: str = "text/html; charset=utf-8",
            headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("X-Content-Type-Options", "nosniff"), *(headers or [])])
    return [body]


def redirect(start_response, location: str) -> list[bytes]:
    start_response("303 See Other", [("Location", location), ("Content-Length", "0")])
    return [b""]


def read_body(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        raise ValueError("request too large")
    return environ["wsgi.input"].read(length) if length else b""


def index(environ, start_response):
    ensure_schema()
    with connect() as conn:
        rows = conn.execute("SELECT name, price FROM products ORDER BY id").fetchall()
    items = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{p:.2f} €</td></tr>" for n, p in rows
    ) or '<tr><td colspan="2">No products yet.</td></tr>'
    files = sorted(p.name for p in UPLOAD_DIR.glob("*") if p.is_file() and not p.name.startswith("."))
    uploads = "".join(
        f'<li><a href="/uploads/{quote(f)}">{html.escape(f)}</a></li>' for f in files
    ) or "<li>No files yet.</li>"
    body = f"""<h2>Products</h2><table><tr><th>Name</th><th>Price</th></tr>{items}</table>
<form method="post" action="/products"><h3>Add a product</h3>
<label>Name <input name="name" required maxlength="200"></label>
<label>Price <input name="price" required inputmode="decimal" pattern="[0-9]+([.,][0-9]{{1,2}})?"></label>
<button>Add</button></form>
<h2>Files</h2><ul>{uploads}</ul>
<form method="post" action="/upload" enctype="multipart/form-data"><h3>Upload a file</h3>
<input type="file" name="file" required> <button>Upload</button></form>"""
    return respond(start_response, "200 OK", page("Products", body))


def add_product(environ, start_response):
    form = parse_qs(read_body(environ).decode("utf-8", "replace"))
    name = (form.get("name") or [""])[0].strip()
    try:
        price = Decimal((form.get("price") or [""])[0].replace(",", "."))
    except InvalidOperation:
        price = Decimal(-1)
    if not name or len(name) > 200 or not price.is_finite() or price < 0 or price >= 10**8:
        return respond(start_response, "400 Bad Request",
                       page("Invalid", "<p>Give a name and a price ≥ 0.</p><p><a href='/'>Back</a></p>"))
    ensure_schema()
    with connect() as conn:
        conn.execute("INSERT INTO products (name, price) VALUES (%s, %s)", (name, price))
    return redirect(start_response, "/")


def upload(environ, start_response):
    body = read_body(environ)
    header = f"Content-Type: {environ.get('CONTENT_TYPE', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(header + body)
    saved = None
    if message.is_multipart():
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file" and part.get_filename():
                stem = SAFE_NAME.sub("_", Path(part.get_filename()).name).strip("._")[:80] or "file"
                saved = f"{secrets.token_hex(4)}-{stem}"
                UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
                (UPLOAD_DIR / saved).write_bytes(part.get_payload(decode=True) or b"")
    if saved is None:
        return respond(start_response, "400 Bad Request", page("Invalid", "<p>No file given.</p>"))
    return redirect(start_response, "/")


def serve_upload(name: str, start_response):
    if not name or "/" in name or name.startswith("."):
        return respond(start_response, "404 Not Found", page("Not found", "<p>Not found.</p>"))
    path = UPLOAD_DIR / name
    if not path.is_file():
        return respond(start_response, "404 Not Found", page("Not found", "<p>Not found.</p>"))
    return respond(start_response, "200 OK", path.read_bytes(), "application/octet-stream",
                   [("Content-Disposition", f"attachment; filename*=UTF-8''{quote(name)}")])


def healthz(start_response):
    """200 only when the database answers."""
    try:
        with connect() as conn:
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:  # noqa: BLE001
        return respond(start_response, "503 Service Unavailable",
                       f"database unavailable: {exc.__class__.__name__}\n".encode(), "text/plain")
    return respond(start_response, "200 OK", b"ok\n", "text/plain", [("Cache-Control", "no-store")])


def application(environ, start_response):
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO") or "/"
    try:
        if path == "/healthz":
            return healthz(start_response)
        if path == "/" and method in ("GET", "HEAD"):
            return index(environ, start_response)
        if path == "/products" and method == "POST":
            return add_product(environ, start_response)
        if path == "/upload" and method == "POST":
            return upload(environ, start_response)
        if path.startswith("/uploads/") and method in ("GET", "HEAD"):
            return serve_upload(path.removeprefix("/uploads/"), start_response)
        return respond(start_response, "404 Not Found", page("Not found", "<p>Not found.</p>"))
    except ValueError:
        return respond(start_response, "413 Content Too Large", page("Too large", "<p>Too large.</p>"))
    except psycopg.Error as exc:
        print(f"database error: {exc.__class__.__name__}", flush=True)
        return respond(start_response, "503 Service Unavailable",
                       page("Unavailable", "<p>The shop is unavailable right now.</p>"))
