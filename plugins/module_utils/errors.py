# -*- coding: utf-8 -*-
# Copyright: llmlab.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type the planner raises: it names the host, the variable and the fix."""

from __future__ import annotations

from typing import Optional


class PlanError(ValueError):
    """Bad input to the planner.

    ``host`` is the inventory host the problem is on (None when it is cluster-wide),
    ``variable`` the inventory variable a user has to change, ``fix`` what to change it to.
    The string form carries all three so that a failed task shows them without extra work.
    """

    def __init__(self, message: str, *, host: Optional[str] = None, variable: Optional[str] = None,
                 fix: Optional[str] = None) -> None:
        self.message = message
        self.host = host
        self.variable = variable
        self.fix = fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = []
        if self.host:
            parts.append("host %s" % self.host)
        if self.variable:
            parts.append("variable %s" % self.variable)
        where = (" [" + ", ".join(parts) + "]") if parts else ""
        fix = (" Fix: " + self.fix) if self.fix else ""
        return "%s%s.%s" % (self.message.rstrip("."), where, fix)

    def as_dict(self) -> dict:
        return {"msg": str(self), "host": self.host, "variable": self.variable, "fix": self.fix}
