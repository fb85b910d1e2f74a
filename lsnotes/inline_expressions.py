"""Numbers in the prose: MyST's ``{eval}`expression``` role, evaluated during batch execution.

:func:`register_engine` adds a papermill engine that asks the kernel for every ``{eval}`` of a
markdown cell when execution reaches it (as jupyterlab-myst does when a reader runs the cell) and
stores the answers in the cell's ``user_expressions`` metadata; :func:`fill_inline_expressions`
writes them into the text of the built book.
"""

from __future__ import annotations

import re

#: ``{eval}`expression``` in a markdown cell: MyST's inline-expression role.
INLINE_EXPRESSION = re.compile(r"\{eval\}`([^`]+)`")
ENGINE_NAME = "lsnotes"


class InlineExpressionError(RuntimeError):
    """A ``{eval}`...``` expression in a chapter's prose failed in the kernel."""


def register_engine() -> None:
    """A papermill engine that also evaluates the ``{eval}`...``` expressions of markdown cells.

    JupyterLab's MyST renderer (jupyterlab-myst) asks the kernel for each expression when a reader
    runs a markdown cell and keeps the answers in the cell's ``user_expressions`` metadata. This
    engine does the same at the same point of execution, so the executed notebook carries the
    numbers its prose quotes, and lsnotes.runbook.stage_book can put them into the built book.
    """
    from nbclient.util import ensure_async, run_sync
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class InlineExpressionClient(PapermillNotebookClient):
        async def async_execute_cell(self, cell, cell_index, execution_count=None,
                                     store_history=True):
            if cell.cell_type != "markdown":
                return await super().async_execute_cell(cell, cell_index, execution_count,
                                                        store_history)
            expressions = list(dict.fromkeys(INLINE_EXPRESSION.findall(cell.source)))
            if not expressions:
                return cell
            msg_id = await ensure_async(self.kc.execute(
                "", silent=True, store_history=False,
                user_expressions={str(i): e for i, e in enumerate(expressions)}))
            reply = await self.async_wait_for_reply(msg_id, cell)
            answers = (reply or {}).get("content", {}).get("user_expressions", {})
            stored = [{"expression": e, "result": answers.get(str(i), {
                "status": "error", "ename": "NoReply", "evalue": "the kernel did not answer",
                "traceback": []})} for i, e in enumerate(expressions)]
            cell.metadata["user_expressions"] = stored
            failed = [s for s in stored if s["result"].get("status") != "ok"]
            if failed:  # like a failing code cell: the chapter stops here
                result = failed[0]["result"]
                raise InlineExpressionError(
                    f"{{eval}}`{failed[0]['expression']}` in the markdown cell {cell_index}: "
                    f"{result.get('ename', 'Error')}: {result.get('evalue', '')}")
            return cell

        # nbclient binds its synchronous wrapper to the base class's coroutine; rebind it.
        execute_cell = run_sync(async_execute_cell)

    class InlineExpressionEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     **kwargs):
            # As NBClientEngine.execute_managed_notebook, with the client above.
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs, timeout=execution_timeout or kwargs.get("timeout"),
                startup_timeout=start_timeout, kernel_name=kernel_name, log=logger,
                log_output=log_output, stdout_file=stdout_file, stderr_file=stderr_file)
            return InlineExpressionClient(nb_man, **final_kwargs).execute()

    papermill_engines.register(ENGINE_NAME, InlineExpressionEngine)


def shown_text(result: dict) -> str:
    """What a reader sees for one stored expression result: its plain text, string quotes off."""
    text = result.get("data", {}).get("text/plain", "")
    text = "".join(text) if isinstance(text, list) else str(text)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    return text


_MYST_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|$~#])")


def fill_inline_expressions(markdown: str, stored: list[dict], where: str,
                            strict: bool = True) -> str:
    """Replace every ``{eval}`e``` in ``markdown`` by the stored result's text (escaped for MyST).

    ``stored`` is the cell's ``user_expressions`` metadata. A missing or failed result is an error
    naming ``where`` and the expression; with ``strict=False`` (a chapter whose execution failed,
    built so that its error can be read) it shows as "[not computed]" instead.
    """
    results = {entry.get("expression"): entry.get("result", {}) for entry in stored or []}

    def fill(match):
        expression = match.group(1)
        result = results.get(expression)
        if result is None or result.get("status") != "ok":
            if not strict:
                return "[not computed]"
            raise ValueError(f"{where}: the prose's {{eval}}`{expression}` has no stored result; "
                             "execute the chapter with `lsnotes run-book` first")
        return _MYST_SPECIAL.sub(r"\\\1", shown_text(result))

    return INLINE_EXPRESSION.sub(fill, markdown)
