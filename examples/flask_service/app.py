"""The Flask service: a JSON shop API on Flask and SQLAlchemy 2.x, as a real app is written.

Served by gunicorn with two sync workers and this folder's config, which preloads the app
(the tables are created and seeded once, in the arbiter) and gives the workers one SQLite
file to share::

    python -m gunicorn examples.flask_service.app:app -c examples/flask_service/gunicorn.conf.py

Routes: ``/health``, ``GET /items?page=N`` (20 items a page), ``GET /items/<id>``,
``POST /orders`` (``{"customer": ..., "lines": [{"item_id", "quantity"}]}``) and
``GET /orders/<id>``. Every request opens its own session (``with Session() as session``)
and closes it before answering, so nothing it loads outlives it.

Memory at a steady load: the orders table grows on disk, not in memory; SQLite's page
cache is capped at 1 MiB a connection (``PRAGMA cache_size``) and the database starts
larger than that, and SQLAlchemy's statement cache holds the few statements the routes
compile; both fill within the warm-up. The heap levels off.

Environment:

``FLASK_DATABASE``
    the SQLite file (``gunicorn.conf.py`` sets a temporary one); unset, an in-memory
    database on a single shared connection (``StaticPool``), for one process.
``FLASK_LEAK=1``
    every answer is also appended to a module-level list, never emptied (a "recent
    responses" list nobody trims), on the line marked ``# planted leak``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, abort, request
from sqlalchemy import ForeignKey, String, create_engine, event, func, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
)
from sqlalchemy.pool import StaticPool

LEAK = os.environ.get("FLASK_LEAK", "") not in ("", "0")
DATABASE = os.environ.get("FLASK_DATABASE", "")
ITEMS = 5000
PAGE = 20

_recent_responses: list[dict[str, Any]] = []


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str] = mapped_column(String(400))
    price_cents: Mapped[int]


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer: Mapped[str] = mapped_column(String(80))
    lines: Mapped[list[OrderLine]] = relationship(back_populates="order")


class OrderLine(Base):
    __tablename__ = "order_lines"
    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    quantity: Mapped[int]
    price_cents: Mapped[int]
    order: Mapped[Order] = relationship(back_populates="lines")


if DATABASE:
    engine = create_engine(f"sqlite:///{DATABASE}", connect_args={"timeout": 30})
else:
    engine = create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )


@event.listens_for(engine, "connect")
def _configure(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA cache_size = -1024")  # KiB: a bounded page cache
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


Session = sessionmaker(engine, expire_on_commit=False)


def init_db() -> None:
    """Create the tables and the catalogue, once (a second call finds them there)."""
    Base.metadata.create_all(engine)
    with Session.begin() as session:
        if session.scalar(select(func.count(Item.id))):
            return
        session.add_all(
            Item(
                id=n,
                name=f"item-{n:05d}",
                description=f"Item {n}: " + "a sturdy, well-made thing. " * 12,
                price_cents=(n * 7919) % 100_000,
            )
            for n in range(1, ITEMS + 1)
        )


def item_json(item: Item) -> dict[str, Any]:
    return {"id": item.id, "name": item.name, "price_cents": item.price_cents}


def order_json(order: Order) -> dict[str, Any]:
    lines = [{"item_id": line.item_id, "quantity": line.quantity} for line in order.lines]
    total = sum(line.price_cents * line.quantity for line in order.lines)
    return {"id": order.id, "customer": order.customer, "lines": lines, "total_cents": total}


def respond(body: dict[str, Any], status: int = 200) -> tuple[dict[str, Any], int]:
    if LEAK:
        _recent_responses.append(body)  # planted leak
    return body, status


app = Flask(__name__)
init_db()


@app.get("/health")
def health() -> tuple[dict[str, Any], int]:
    return {"status": "ok"}, 200


@app.get("/items")
def list_items() -> tuple[dict[str, Any], int]:
    page = max(request.args.get("page", 0, type=int), 0)
    with Session() as session:
        items = session.scalars(select(Item).order_by(Item.id).offset(page * PAGE).limit(PAGE))
        return respond({"page": page, "items": [item_json(item) for item in items]})


@app.get("/items/<int:item_id>")
def get_item(item_id: int) -> tuple[dict[str, Any], int]:
    with Session() as session:
        item = session.get(Item, item_id) or abort(404)
        return respond({**item_json(item), "description": item.description})


@app.post("/orders")
def create_order() -> tuple[dict[str, Any], int]:
    body = request.get_json(silent=True) or {}
    try:
        wanted = [(int(line["item_id"]), int(line["quantity"])) for line in body["lines"]]
        customer = str(body.get("customer", "anonymous"))[:80]
    except (KeyError, TypeError, ValueError):
        return {"error": "expected {'lines': [{'item_id', 'quantity'}]}"}, 400
    ids = {item_id for item_id, _ in wanted}
    with Session.begin() as session:
        query = select(Item.id, Item.price_cents).where(Item.id.in_(ids))
        prices: dict[int, int] = dict(session.execute(query).tuples().all())
        if len(prices) < len(ids):
            return {"error": "unknown item"}, 404
        lines = [OrderLine(item_id=i, quantity=q, price_cents=prices[i]) for i, q in wanted]
        order = Order(customer=customer, lines=lines)
        session.add(order)
        session.flush()
        return respond(order_json(order), 201)


@app.get("/orders/<int:order_id>")
def get_order(order_id: int) -> tuple[dict[str, Any], int]:
    with Session() as session:
        query = select(Order).where(Order.id == order_id).options(selectinload(Order.lines))
        order = session.scalars(query).first() or abort(404)
        return respond(order_json(order))
