"""One error hierarchy, rendered as RFC 9457 problem+json in the caller's language."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.messages import Text, current_locale

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("duijie.errors")


class FieldError:
    __slots__ = ("field", "message")

    def __init__(self, field: str, message: Text, **params: object) -> None:
        self.field = field
        self.message = message.render(**params)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class AppError(Exception):
    """Base of every error a person should read. Subclasses fix status, code and title."""

    status = 400
    code = "bad-request"
    title = Text("请求有误", "Bad request")

    def __init__(
        self,
        detail: Text | None = None,
        *,
        errors: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,
        **params: object,
    ) -> None:
        self.detail = detail or self.title
        self.params = params
        self.errors = list(errors)
        self.headers = dict(headers or {})
        super().__init__(self.detail.en.format(**params) if params else self.detail.en)

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"/problems/{self.code}",
            "title": self.title.render(),
            "status": self.status,
            "detail": self.detail.render(**self.params),
            # Both languages as extension members, so a service relaying a refusal (the approval saga
            # showing why an offer refused) can keep it bilingual without asking twice.
            "detail_zh": self.detail.zh.format(**self.params) if self.params else self.detail.zh,
            "detail_en": self.detail.en.format(**self.params) if self.params else self.detail.en,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [error.as_dict() for error in self.errors]
        return body


class Unauthorized(AppError):
    status, code = 401, "unauthorized"
    title = Text("需要登录", "Authentication required")


class Forbidden(AppError):
    status, code = 403, "forbidden"
    title = Text("无权操作", "Not allowed")


class NotFound(AppError):
    status, code = 404, "not-found"
    title = Text("未找到", "Not found")


class Conflict(AppError):
    status, code = 409, "conflict"
    title = Text("与当前状态冲突", "Conflict with the current state")


class PreconditionFailed(AppError):
    status, code = 412, "precondition-failed"
    title = Text("数据已被他人修改", "The record has changed")


class PreconditionRequired(AppError):
    status, code = 428, "precondition-required"
    title = Text("缺少 If-Match 请求头", "If-Match header required")


class ValidationFailed(AppError):
    status, code = 422, "validation-failed"
    title = Text("输入有误", "Invalid input")


class ServiceUnavailable(AppError):
    status, code = 503, "unavailable"
    title = Text("服务暂不可用", "Service unavailable")


def bilingual_error(text: Text, **params: object) -> PydanticCustomError:
    """A validator error that carries both languages; the handler picks the caller's."""
    return PydanticCustomError(
        "duijie", text.en.format(**params), {"zh": text.zh.format(**params), "en": text.en.format(**params)}
    )


def about_field(error: PydanticCustomError, field: str) -> PydanticCustomError:
    """The same error, naming the field it is about: a check across fields still points at one to correct."""
    return PydanticCustomError(error.type, error.message_template, {**(error.context or {}), "field": field})


CORRECT_FIELDS = Text("请修改标出的字段后重试。", "Correct the fields listed and try again.")


def invalid_field(field: str, error: PydanticCustomError) -> ValidationFailed:
    """A rule checked outside a schema (e.g. against the stored record), reported like a schema error."""
    context = error.context or {}
    message = Text(str(context.get("zh", error.message())), str(context.get("en", error.message())))
    named = context.get("field")
    return ValidationFailed(CORRECT_FIELDS, errors=[FieldError(named if isinstance(named, str) else field, message)])


# Pydantic's own error types, said in both languages. Unknown ones fall back to pydantic's text.
_PYDANTIC_MESSAGES: dict[str, Text] = {
    "missing": Text("必填", "Field required"),
    "extra_forbidden": Text("不认识的字段", "Unknown field"),
    "string_too_short": Text("至少 {min_length} 个字符", "At least {min_length} characters"),
    "string_too_long": Text("最多 {max_length} 个字符", "At most {max_length} characters"),
    "too_short": Text("至少 {min_length} 项", "At least {min_length} items"),
    "too_long": Text("最多 {max_length} 项", "At most {max_length} items"),
    "string_pattern_mismatch": Text("格式不正确", "Wrong format"),
    "greater_than": Text("必须大于 {gt}", "Must be greater than {gt}"),
    "greater_than_equal": Text("必须大于或等于 {ge}", "Must be at least {ge}"),
    "less_than": Text("必须小于 {lt}", "Must be less than {lt}"),
    "less_than_equal": Text("必须小于或等于 {le}", "Must be at most {le}"),
    "decimal_max_places": Text("最多 {decimal_places} 位小数", "At most {decimal_places} decimal places"),
    "decimal_max_digits": Text("数字过长", "Too many digits"),
    "decimal_parsing": Text("请输入数字", "Enter a number"),
    "decimal_type": Text("请输入数字", "Enter a number"),
    "finite_number": Text("请输入有限的数字", "Enter a finite number"),
    "int_parsing": Text("请输入整数", "Enter a whole number"),
    "int_type": Text("请输入整数", "Enter a whole number"),
    "int_from_float": Text("请输入整数", "Enter a whole number"),
    "float_parsing": Text("请输入数字", "Enter a number"),
    "float_type": Text("请输入数字", "Enter a number"),
    "bool_parsing": Text("请输入 true 或 false", "Enter true or false"),
    "bool_type": Text("请输入 true 或 false", "Enter true or false"),
    "string_type": Text("请输入文字", "Enter text"),
    "list_type": Text("应为列表", "Must be a list"),
    "dict_type": Text("应为对象", "Must be an object"),
    "model_type": Text("应为对象", "Must be an object"),
    "model_attributes_type": Text("应为对象", "Must be an object"),
    "literal_error": Text("只能是：{expected}", "Must be one of: {expected}"),
    "enum": Text("只能是：{expected}", "Must be one of: {expected}"),
    "date_parsing": Text("日期格式应为 YYYY-MM-DD", "Dates are written YYYY-MM-DD"),
    "date_from_datetime_parsing": Text("日期格式应为 YYYY-MM-DD", "Dates are written YYYY-MM-DD"),
    "date_from_datetime_inexact": Text("日期不应包含时间", "A date must not carry a time"),
    "date_type": Text("日期格式应为 YYYY-MM-DD", "Dates are written YYYY-MM-DD"),
    "datetime_parsing": Text("时间格式应为 ISO 8601", "Times are written in ISO 8601"),
    "datetime_type": Text("时间格式应为 ISO 8601", "Times are written in ISO 8601"),
    "uuid_parsing": Text("不是有效的编号（UUID）", "Not a valid id (UUID)"),
    "uuid_type": Text("不是有效的编号（UUID）", "Not a valid id (UUID)"),
    "json_invalid": Text("请求体不是有效的 JSON", "The body is not valid JSON"),
    "json_type": Text("请求体不是有效的 JSON", "The body is not valid JSON"),
    "value_error": Text("取值无效：{error}", "Invalid value: {error}"),
    "assertion_error": Text("取值无效：{error}", "Invalid value: {error}"),
}


def _field_name(loc: Iterable[Any]) -> str:
    parts = [str(part) for part in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie", "form"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _readable_context(ctx: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """Bounds as people write them (90, not 90.0), and lists joined in the caller's language."""
    readable: dict[str, Any] = {}
    for name, value in ctx.items():
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if name == "expected" and isinstance(value, str) and locale == "zh":
            value = value.replace(" or ", " 或 ")
        readable[name] = value
    return readable


def field_errors_from_pydantic(raw_errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    locale = current_locale.get()
    errors: list[FieldError] = []
    for raw in raw_errors:
        ctx = _readable_context(raw.get("ctx") or {}, locale)
        field = _field_name(raw.get("loc", ()))
        if raw.get("type") == "duijie" and field == "body" and isinstance(ctx.get("field"), str):
            field = ctx["field"]  # a check across fields names the one the person should correct
        if raw.get("type") == "duijie" and locale in ctx:
            errors.append(FieldError(field, Text(ctx["zh"], ctx["en"])))
            continue
        text = _PYDANTIC_MESSAGES.get(str(raw.get("type")))
        try:
            message = text.render(**ctx) if text else str(raw.get("msg", ""))
        except (KeyError, IndexError):
            message = str(raw.get("msg", ""))
        errors.append(FieldError(field, Text(message, message)))
    return errors


def problem_response(error: AppError, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    return JSONResponse(
        error.problem(instance), status_code=error.status, media_type=PROBLEM_JSON, headers=error.headers
    )


_STATUS_ERRORS: dict[int, type[AppError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict}


class MethodNotAllowed(AppError):
    status, code = 405, "method-not-allowed"
    title = Text("不支持该请求方法", "Method not allowed")


class InternalError(AppError):
    status, code = 500, "internal-error"
    title = Text("服务器内部错误", "Internal server error")
    detail_text = Text("出了点问题，已记录。请稍后重试。", "Something went wrong and has been logged. Try again later.")


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return problem_response(exc, request)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors_from_pydantic(exc.errors())
    return problem_response(ValidationFailed(CORRECT_FIELDS, errors=errors), request)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return problem_response(MethodNotAllowed(), request)
    error_class = _STATUS_ERRORS.get(exc.status_code, AppError)
    error = error_class()
    error.status = exc.status_code
    return problem_response(error, request)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(InternalError(InternalError.detail_text), request)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
