"""System check: every URL is served by a merchant-scoped, tenant-exempt or admin view."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.core import checks
from django.urls import URLPattern, URLResolver, get_resolver

from .tenancy import guard_problem


@dataclass(frozen=True)
class Route:
    name: str | None  # namespaced ("api:job-detail"), for reverse()
    pattern: str  # the full pattern text, for messages
    callback: Callable
    kwarg_names: frozenset[str]


def iter_routes(resolver: URLResolver | None = None) -> Iterator[Route]:
    """Every concrete URL pattern of the project, with its namespaced name and kwargs."""
    yield from _walk(resolver or get_resolver(), prefix="", namespace="", kwargs=frozenset())


def _kwargs_of(pattern) -> frozenset[str]:
    regex = pattern.pattern.regex if hasattr(pattern, "pattern") else pattern.regex
    return frozenset(re.compile(regex.pattern).groupindex)


def _walk(resolver: URLResolver, *, prefix: str, namespace: str, kwargs: frozenset[str]):
    for entry in resolver.url_patterns:
        text = prefix + str(entry.pattern)
        names = kwargs | _kwargs_of(entry)
        if isinstance(entry, URLResolver):
            child_ns = namespace
            if entry.namespace:
                child_ns = f"{namespace}{entry.namespace}:"
            yield from _walk(entry, prefix=text, namespace=child_ns, kwargs=names)
        elif isinstance(entry, URLPattern):
            name = f"{namespace}{entry.name}" if entry.name else None
            yield Route(name=name, pattern=text, callback=entry.callback, kwarg_names=names)


@checks.register(checks.Tags.security, checks.Tags.urls)
def check_tenancy_guard(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    for route in iter_routes():
        problem = guard_problem(route.callback, route.kwarg_names)
        if problem is not None:
            errors.append(
                checks.Error(
                    f"URL {route.pattern!r}: {problem}",
                    hint="Derive from MerchantViewMixin/MerchantAPIMixin or mark it tenant_exempt.",
                    id="campaigns.E001",
                )
            )
    return errors
