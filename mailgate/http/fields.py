"""Request fields checked by the store's own rules (store/names.py) while the request is
validated, so a value the store would refuse is a 400 naming its field before anything is
written, and the rules live in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator

from mailgate.store import names
from mailgate.store.errors import InvalidName


def _store_rule(rule: Callable[[str], str | None]) -> AfterValidator:
    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return rule(value)
        except InvalidName as exc:
            raise ValueError(str(exc)) from None

    return AfterValidator(check)


PodName = Annotated[str, _store_rule(names.pod_name)]
ClientId = Annotated[str, _store_rule(lambda v: names.optional_text(v, "client id"))]
DisplayName = Annotated[str, _store_rule(lambda v: names.optional_text(v, "display name"))]
DomainName = Annotated[str, _store_rule(names.domain_name)]
KeyName = Annotated[str, _store_rule(names.key_label)]
Reason = Annotated[str, _store_rule(lambda v: names.optional_text(v, "reason"))]
