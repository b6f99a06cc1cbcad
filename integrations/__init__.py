"""The outside world: one package per kind of provider, each behind a small interface."""

from collections.abc import Callable

BeforeWrite = Callable[[], None]  # called right before each change at a provider; may raise to stop
