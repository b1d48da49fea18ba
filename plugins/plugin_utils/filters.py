# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side helper for the collection's filters: planner errors become AnsibleFilterError."""

from __future__ import annotations

import functools
from typing import Any, Callable

from ansible.errors import AnsibleFilterError

from ansible_collections.llmlab.cluster.plugins.module_utils.errors import PlanError


def as_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a render function so that a PlanError (or a missing key) reaches the user as a filter error."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PlanError as exc:
            raise AnsibleFilterError("llmlab.cluster.%s: %s" % (func.__name__, exc)) from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise AnsibleFilterError("llmlab.cluster.%s: the input is not a plan from llmlab.cluster.fabric_plan / "
                                     "parallel_plan (%s: %s)" % (func.__name__, type(exc).__name__, exc)) from exc

    return wrapper
