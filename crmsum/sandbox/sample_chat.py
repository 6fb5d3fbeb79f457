"""The team's Telegram chat as a Telegram Desktop export (single-chat `result.json`).

Messages follow the CRM story (new leads, discount questions, meetings, wins, losses) plus the usual
office noise; every format variant the importer must survive appears: plain and mixed-entity text,
replies, forwards, edits, reactions, media stubs ("File not included") and service messages. Written day by day.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crmsum.sandbox import sample_corpus as C
from crmsum.sandbox.sample_people import fmt_phone

if TYPE_CHECKING:  # pragma: no cover
    from crmsum.sandbox.generate import _Generator, Manager

NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
MSK = dt.timezone(dt.timedelta(hours=3))

FORWARDED_TEXTS = [
    "Добрый день! Пришлите, пожалуйста, счёт на оплату. {c_nom}, {company}, тел. {phone}",
    "Здравствуйте, это {c_nom} из {company}. Нам нужна консультация по {product_dat}, перезвоните на {phone}.",
    "Коллеги, направляю реквизиты, вопросы по договору — на {email}. С уважением, {c_nom}",
]
PHOTO_CAPTIONS = ["", "", "Скрин КП для {company}", "Вот так выглядит их склад", "Образцы с выставки"]


try:
    from json.encoder import c_encode_basestring as _enc_str  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    from json.encoder import py_encode_basestring as _enc_str
if _enc_str is None:  # pragma: no cover
    from json.encoder import py_encode_basestring as _enc_str


def _pretty(obj: Any, level: int) -> str:
    """json.dumps(obj, ensure_ascii=False, indent=1) shifted by `level` spaces — Telegram Desktop's
    layout — without the slow pure-Python encoder that `indent` forces."""
    if isinstance(obj, str):
        return _enc_str(obj)
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if obj is None:
        return "null"
    if isinstance(obj, (int, float)):
        return repr(obj)
    pad = "\n" + " " * (level + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        return "{" + ",".join(pad + _enc_str(k) + ": " + _pretty(v, level + 1) for k, v in obj.items()) \
            + "\n" + " " * level + "}"
    if not obj:
        return "[]"
    return "[" + ",".join(pad + _pretty(v, level + 1) for v in obj) + "\n" + " " * level + "]"


def _stamp(ts: int) -> tuple[str, str]:
    return dt.datetime.fromtimestamp(ts, MSK).strftime("%Y-%m-%dT%H:%M:%S"), str(ts)


def _segments(text: str, entities: list[tuple[str, str, dict]]) -> list[Any]:
    """Split text into plain strings and entity dicts, first occurrence of each value, no overlaps."""
    spans = []
    for etype, value, extra in entities:
        pos = text.find(value)
        if pos >= 0 and value:
            spans.append((pos, pos + len(value), etype, extra))
    spans.sort()
    out: list[Any] = []
    cur = 0
    for a, b, etype, extra in spans:
        if a < cur:
            continue
        if a > cur:
            out.append(text[cur:a])
        out.append({"type": etype, "text": text[a:b], **extra})
        cur = b
    if cur < len(text):
        out.append(text[cur:])
    return out


def _text_fields(text: str, entities: list[tuple[str, str, dict]]) -> tuple[Any, list[dict]]:
    if not entities:
        return text, ([{"type": "plain", "text": text}] if text else [])
    segs = _segments(text, entities)
    if all(isinstance(s, str) for s in segs):
        return text, [{"type": "plain", "text": text}]
    te = [{"type": "plain", "text": s} if isinstance(s, str) else dict(s) for s in segs]
    return segs, te


class _Chat:
    def __init__(self, g: "_Generator") -> None:
        self.g = g
        self.rng = random.Random(f"crmsum-sample/{g.seed}/chat")
        self.next_id = 1
        self.by_uid = {m.uid: m for m in g.managers}

    def who(self, m: "Manager") -> tuple[str, str]:
        return m.person.full, f"user{m.tg_id}"

    def present(self, ts: int) -> list["Manager"]:
        return [self.g.head] + [m for m in self.g.sales if m.joined <= ts and (m.left is None or ts < m.left)]

    def message(self, ts: int, author: "Manager", text: str, planted: list[tuple[str, str]] | None = None,
                extra_entities: list[tuple[str, str, dict]] | None = None, **fields: Any) -> dict:
        rng = self.rng
        date, unix = _stamp(ts)
        msg: dict[str, Any] = {"id": 0, "type": "message", "date": date, "date_unixtime": unix}
        if rng.random() < 0.05 and text:
            e_date, e_unix = _stamp(min(ts + rng.randrange(20, 1800), self.g.end_ts))
            msg["edited"], msg["edited_unixtime"] = e_date, e_unix
        name, uid = self.who(author)
        msg["from"], msg["from_id"] = name, uid
        for k in ("forwarded_from", "reply_to_message_id"):
            if k in fields:
                msg[k] = fields.pop(k)
        msg.update(fields)
        ents: list[tuple[str, str, dict]] = list(extra_entities or [])
        phone_entity = rng.random() < 0.7
        for kind, value in planted or []:
            if kind == "phone" and phone_entity:
                ents.append(("phone", value, {}))
            elif kind == "email":
                ents.append(("email", value, {}))
        if "http" in text:
            word = next(w for w in text.split() if w.startswith("http"))
            ents.append(("link", word, {}))
        msg["text"], msg["text_entities"] = _text_fields(text, ents)
        return msg

    def service(self, ts: int, actor: "Manager", action: str, **fields: Any) -> dict:
        date, unix = _stamp(ts)
        name, uid = self.who(actor)
        msg = {"id": 0, "type": "service", "date": date, "date_unixtime": unix, "actor": name, "actor_id": uid,
               "action": action}
        msg.update(fields)
        msg["text"], msg["text_entities"] = "", []
        return msg

    def reactions(self, ts: int, people: list["Manager"], emoji: str) -> list[dict]:
        rng = self.rng
        k = rng.randint(1, min(5, len(people)))
        who = rng.sample(people, k)
        recent = []
        for m in who:
            name, uid = self.who(m)
            recent.append({"from": name, "from_id": uid,
                           "date": _stamp(min(ts + rng.randrange(30, 3600), self.g.end_ts))[0]})
        return [{"type": "emoji", "count": k, "emoji": emoji, "recent": recent}]


def write_chat(g: "_Generator", dest: Path) -> int:
    """Write result.json day by day; return the number of messages."""
    from crmsum.sandbox.generate import Ctx, _money

    ch = _Chat(g)
    rng = ch.rng
    chat_id = rng.randrange(1_500_000_000, 1_999_999_999)
    count = 0
    first = True
    with open(dest, "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n" + f' "name": "Отдел продаж ПромСнаб",\n "type": "private_supergroup",\n "id": {chat_id},\n'
                + ' "messages": [\n')

        def emit(msgs: list[dict]) -> None:
            nonlocal count, first
            for m in msgs:
                f.write(("" if first else ",\n") + "  " + _pretty(m, 2))
                first = False
                count += 1

        pinned_month = None
        for day in range(g.chat_days):
            g.progress("chat days", 1, total=g.chat_days)
            d = g.start + dt.timedelta(days=day)
            day_ts = int(dt.datetime(d.year, d.month, d.day, tzinfo=MSK).timestamp())
            day_end = day_ts + 86400
            people = ch.present(day_ts + 43200)
            sales = [m for m in people if not m.is_head]
            items: list[tuple[int, int, Any]] = []   # (ts, order, builder)
            order = 0

            def add(ts: int, fn) -> None:
                nonlocal order
                items.append((max(day_ts, min(day_end - 1, ts)), order, fn))
                order += 1

            if day == 0:
                founders = [m for m in g.managers if m.joined <= day_ts]
                add(day_ts + 9 * 3600, lambda: [ch.service(day_ts + 9 * 3600, g.head, "invite_members",
                                                           members=[m.person.full for m in founders if not m.is_head])])
            for m in g.sales:
                if day_ts <= m.joined < day_end and m.joined > g.start_ts:
                    if m is g.joiner:
                        add(m.joined, lambda m=m: [ch.service(m.joined, g.head, "invite_members", members=[m.person.full]),
                                                   ch.message(m.joined + 300, g.head, f"Коллеги, знакомьтесь: {m.person.full}, "
                                                              "новый менеджер, примет часть клиентов.", [("name", m.person.full)])])
                    else:
                        add(m.joined, lambda m=m: [ch.service(m.joined, m, "join_group_by_link")])
                if m.left is not None and day_ts <= m.left < day_end:
                    add(m.left + 3600, lambda m=m: [ch.message(m.left - 600, m, "Коллеги, сегодня мой последний день. "
                                                               "Всех клиентов передал, спасибо за всё! 🙏"),
                                                    ch.service(m.left + 3600, g.head, "remove_members",
                                                               members=[m.person.full])])
            # CRM story moments of the day
            for mo in sorted(g.moments.get(day, [])):
                add(mo[0], lambda mo=mo: _moment_msgs(ch, g, mo, people, Ctx, _money))
            weekday = d.weekday() < 5
            n_fill = rng.randint(12, 55) if weekday else rng.randint(5, 9)
            n_fill = max(0, min(n_fill, 100 - len(items) * 2))
            for _ in range(n_fill):
                ts = day_ts + int(rng.triangular(8.5, 20.5, 12.5) * 3600)
                author = rng.choice(people)
                add(ts, lambda ts=ts, author=author: [_filler(ch, g, ts, author, people, sales, Ctx, _money)])
            if weekday and (pinned_month != (d.year, d.month)) and d.day <= 7 and d.weekday() == 0:
                pinned_month = (d.year, d.month)
                ts = day_ts + 9 * 3600 + 1800
                add(ts, lambda ts=ts: _plan_and_pin(ch, g, ts, _money))
            items.sort(key=lambda x: (x[0], x[1]))
            out: list[dict] = []
            for _ts, _o, fn in items:
                out.extend(fn())
            for m in out:   # follow-ups scheduled past midnight stay on their day
                if int(m["date_unixtime"]) >= day_end:
                    m["date"], m["date_unixtime"] = _stamp(day_end - 1)
                    if "edited" in m:
                        m["edited"], m["edited_unixtime"] = m["date"], m["date_unixtime"]
            out.sort(key=lambda m: int(m["date_unixtime"]))
            recent: list[int] = []
            for m in out:
                m["id"] = ch.next_id
                ch.next_id += 1
                if m.get("reply_to_message_id") == -1:     # reply to the previous message
                    m["reply_to_message_id"] = m["id"] - 1
                elif m.get("reply_to_message_id") == -2:   # reply to something recent
                    if recent:
                        m["reply_to_message_id"] = rng.choice(recent[-10:])
                    else:
                        del m["reply_to_message_id"]
                if m.get("message_id") == -1:
                    m["message_id"] = m["id"] - 1
                if m["type"] == "message":
                    recent.append(m["id"])
            # fix key order after filling ids (id first, as the export does)
            emit(out)
        f.write("\n ]\n}\n")
    return count


def _plan_and_pin(ch: _Chat, g: "_Generator", ts: int, money) -> list[dict]:
    rng = ch.rng
    plan = rng.randrange(8, 30) * 1_000_000
    text = f"План на месяц: {money(plan)}. Ставим приоритет на сделки в Переговорах и Согласовании."
    m = ch.message(ts, g.head, text, extra_entities=[("bold", "План на месяц", {})])
    p = ch.service(ts + 60, g.head, "pin_message", message_id=-1)
    return [m, p]


def _moment_msgs(ch: _Chat, g: "_Generator", mo: tuple, people: list, Ctx, money) -> list[dict]:
    rng = ch.rng
    ts, kind, uid, co_idx, contact_id = mo[:5]
    author = ch.by_uid.get(uid, g.head)
    co = g.companies[co_idx]
    contact = next((c for c in (g.contacts[i] for i in co.contacts) if c.cid == contact_id), None)
    person = contact.person if contact else None
    others = [m for m in people if m is not author] or [g.head]
    colleague = rng.choice(others)
    ctx = Ctx(g.reg, rng, person, company=co.name, product=rng.choice(C.PRODUCTS),
              competitor=rng.choice(C.COMPETITORS), mgr_first=colleague.person.first, discount=5, amount="")
    msgs = []
    if kind == "new":
        if rng.random() < 0.5:
            return []
        text = ctx.render(rng.choice(C.CHAT_NEW))
        msgs.append(ch.message(ts, author, text, ctx.planted))
    elif kind == "discount":
        ctx.fixed["discount"] = mo[5]
        text = ctx.render(C.CHAT_ADVICE[0])
        msgs.append(ch.message(ts, author, text, ctx.planted))
        ans = ctx.render(rng.choice(C.CHAT_DISCOUNT_ANSWER))
        msgs.append(ch.message(ts + rng.randrange(120, 3600), g.head, ans, reply_to_message_id=-1))
    elif kind == "meeting":
        if rng.random() < 0.6:
            return []
        msgs.append(ch.message(ts, author, ctx.render(rng.choice(C.CHAT_MEETING)), ctx.planted))
    elif kind == "won":
        ctx.fixed["amount"] = money(mo[5])
        m = ch.message(ts, author, ctx.render(rng.choice(C.CHAT_WIN)), ctx.planted)
        m["reactions"] = ch.reactions(ts, others, rng.choice(["🎉", "🔥", "👏"]))
        msgs.append(m)
        if rng.random() < 0.5:
            msgs.append(ch.message(ts + rng.randrange(60, 1800), g.head,
                                   rng.choice(["Поздравляю! 💪", "Отлично, так держать!", "Молодец!"]), reply_to_message_id=-1))
    elif kind == "lost":
        if rng.random() < 0.4:
            return []
        ctx.fixed["reason"] = mo[5].lower()
        msgs.append(ch.message(ts, author, ctx.render(rng.choice(C.CHAT_LOSS)), ctx.planted))
    return msgs


def _filler(ch: _Chat, g: "_Generator", ts: int, author, people: list, sales: list, Ctx, money) -> dict:
    rng = ch.rng
    r = rng.random()
    others = [m for m in people if m is not author] or [author]
    if r < 0.04:
        return ch.message(ts, author, "", file=NOT_INCLUDED, thumbnail=NOT_INCLUDED, media_type="sticker",
                          sticker_emoji=rng.choice(C.STICKERS), width=512, height=512)
    if r < 0.06:
        return ch.message(ts, author, "", file=NOT_INCLUDED, media_type="voice_message", mime_type="audio/ogg",
                          duration_seconds=rng.randrange(3, 120))
    if r < 0.065:
        return ch.message(ts, author, "", file=NOT_INCLUDED, thumbnail=NOT_INCLUDED, media_type="video_file",
                          mime_type="video/mp4", duration_seconds=rng.randrange(5, 90), width=1280, height=720)
    co = rng.choice(g.companies)
    contact = g.contacts[rng.choice(co.contacts)]
    ctx = Ctx(g.reg, rng, contact.person, company=co.name, product=rng.choice(C.PRODUCTS),
              competitor=rng.choice(C.COMPETITORS), mgr_first=rng.choice(others).person.first,
              discount=rng.choice([5, 7, 10, 15]), amount=money(rng.randrange(50, 900) * 10_000))
    if r < 0.09:
        cap = ctx.render(rng.choice(PHOTO_CAPTIONS))
        return ch.message(ts, author, cap, ctx.planted, photo=NOT_INCLUDED, width=1280, height=960)
    if r < 0.105:
        slug = co.domain.split(".")[0]
        return ch.message(ts, author, "", file=NOT_INCLUDED, file_name=rng.choice(C.FILE_NAMES).format(slug=slug),
                          mime_type="application/pdf")
    if r < 0.12:
        text = ctx.render(rng.choice(FORWARDED_TEXTS))
        g.reg.names.add(contact.person.full)
        return ch.message(ts, author, text, ctx.planted, forwarded_from=contact.person.full)
    if r < 0.30 and not author.is_head:
        return ch.message(ts, author, ctx.render(rng.choice(C.CHAT_ADVICE[1:])), ctx.planted,
                          **({"reply_to_message_id": -2} if rng.random() < 0.2 else {}))
    if r < 0.36 and author.is_head:
        text = ctx.render(rng.choice(C.CHAT_HEAD))
        return ch.message(ts, author, text, ctx.planted)
    if r < 0.40:
        mate = rng.choice(others)
        if rng.random() < 0.5:
            handle = "@" + mate.handle
            text = f"{handle} {rng.choice(['глянь личку', 'перезвони клиенту, пожалуйста', 'ты на месте?', 'скинь КП'])}"
            return ch.message(ts, author, text, extra_entities=[("mention", handle, {})])
        text = f"{mate.person.full}, {rng.choice(['посмотри сделку', 'зайди ко мне', 'спасибо за помощь!'])}"
        g.reg.names.add(mate.person.full)
        return ch.message(ts, author, text, extra_entities=[("mention_name", mate.person.full, {"user_id": mate.tg_id})])
    if r < 0.42:
        url = f"https://{co.domain}/tender/{rng.randrange(1000, 99999)}"
        return ch.message(ts, author, f"Тендер {co.name} на {ctx.fixed['product_acc']}: {url}")
    if r < 0.43:
        text = f"Кто отвечает за {co.name}? Там новый контакт — {contact.person.full}, {fmt_phone(contact.person.phone, 4)}"
        g.reg.names.add(contact.person.full)
        g.reg.phones.add(fmt_phone(contact.person.phone, 4))
        return ch.message(ts, author, text, [("phone", fmt_phone(contact.person.phone, 4))])
    text = rng.choice(C.CHAT_SMALLTALK)
    extra: dict[str, Any] = {"reply_to_message_id": -2} if rng.random() < 0.15 else {}
    m = ch.message(ts, author, text, **extra)
    if rng.random() < 0.05:
        m["reactions"] = ch.reactions(ts, others, rng.choice(C.REACTIONS))
    return m
