"""Operator actions on one record (subscribe this customer, grant credit, void this invoice): a button on the
change page opens a page of the admin with a typed form (or a confirmation), the submit calls the same service as
the API, and a rejection from the service is shown on the form, never as a 500.

    class InvoiceAdmin(ObjectActionsMixin, admin.ModelAdmin):
        object_actions = (
            ObjectAction("void", "Void", run=void_invoice, confirm="Voiding cannot be undone.", destructive=True,
                         available=lambda invoice: "void" in available_actions(invoice)),
        )

`run(request, obj, cleaned_data)` returns the success message, or an `HttpResponse` (a download, a redirect).
A link to an action page may carry `?next=<url>` (the customer's page links to its subscription's actions): the
operator returns there after the action or on cancel.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from openmeter_site.admin_ui.forms import FieldsetsForm
from openmeter_site.core.errors import DomainError


class ActionForm(forms.Form):
    """The form of an operator action; it knows the record it acts on (to offer its plans, its entitlements)."""

    def __init__(self, *args: Any, obj: Model, **kwargs: Any) -> None:
        self.obj = obj
        super().__init__(*args, **kwargs)


@dataclass(frozen=True)
class ObjectAction:
    name: str
    label: str
    run: Callable[[HttpRequest, Any, dict[str, Any]], str | HttpResponse]
    form: type[ActionForm] = ActionForm
    description: str = ""
    confirm: str = ""  # shown as a warning above the submit button (destructive or irreversible actions)
    destructive: bool = False
    available: Callable[[Any], bool] = lambda obj: True
    initial: Callable[[Any], dict[str, Any]] = lambda obj: {}
    # (the API's field a service's error names, the form's field that shows it), where their names differ
    error_fields: tuple[tuple[str, str], ...] = ()


def actor(request: HttpRequest) -> str:
    """How the back office signs what an operator did (invoice history, audit rows)."""
    return f"admin:{request.user.get_username()}"


def show_error(form: forms.Form, exc: DomainError | ValidationError, error_fields: tuple[tuple[str, str], ...] = ()
               ) -> None:
    """A service's rejection on the form: on the field it names (in its extensions, or as "field: …" in its message,
    `error_fields` translating the API's names) when the form has it, else above the form."""
    if isinstance(exc, ValidationError):
        form.add_error(None, exc)
        return
    named = exc.extensions.get("field") or exc.detail.partition(":")[0]
    field = dict(error_fields).get(named, named)
    form.add_error(field if field in form.fields else None, exc.detail)


class ObjectActionsMixin(admin.ModelAdmin):
    object_actions: tuple[ObjectAction, ...] = ()
    change_form_template = "admin/admin_ui/change_form.html"

    def get_object_actions(self, request: HttpRequest, obj: Any) -> list[ObjectAction]:
        if not self.has_object_action_permission(request, obj):
            return []
        return [a for a in self.object_actions if a.available(obj)]

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        """Acting changes the record; a read-only admin (history edited only through actions) overrides this."""
        return self.has_change_permission(request, obj)

    def get_urls(self) -> list:
        extra = [path("<path:object_id>/do/<slug:action>/", self.admin_site.admin_view(self.object_action_view),
                      name=f"{self.opts.app_label}_{self.opts.model_name}_do")]
        return extra + super().get_urls()

    def object_action_url(self, obj: Model, name: str) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_do", args=[obj.pk, name])

    def action_links(self, request: HttpRequest, obj: Model, *, next_url: str = "") -> list[dict[str, Any]]:
        """The actions available on `obj` as links (label, url, destructive), e.g. for another record's page."""
        suffix = f"?{urlencode({'next': next_url})}" if next_url else ""
        return [{"label": a.label, "url": self.object_action_url(obj, a.name) + suffix, "destructive": a.destructive}
                for a in self.get_object_actions(request, obj)]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        obj = self.get_object(request, object_id)
        buttons = [] if obj is None else self.action_links(request, obj)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "object_buttons": buttons})

    def object_action_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}")
        if not self.has_object_action_permission(request, obj):
            raise PermissionDenied
        chosen = next((a for a in self.object_actions if a.name == action), None)
        if chosen is None:
            raise Http404(f"No action {action!r}")
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        back_url = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(back_url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
            back_url = change_url
        if not chosen.available(obj):
            messages.error(request, f"“{chosen.label}” is not possible for {obj} now.")
            return HttpResponseRedirect(back_url)
        data = request.POST if request.method == "POST" else None
        form = chosen.form(data, obj=obj, initial=chosen.initial(obj))
        if request.method == "POST" and form.is_valid():
            try:
                result = chosen.run(request, obj, form.cleaned_data)
            except (DomainError, ValidationError) as exc:
                show_error(form, exc, chosen.error_fields)
            else:
                if isinstance(result, HttpResponse):
                    return result
                messages.success(request, result)
                return HttpResponseRedirect(back_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "original": obj, "action": chosen, "form": form, "change_url": change_url,
            "back_url": back_url,
            "title": f"{chosen.label}: {obj}", "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/admin_ui/action_form.html", context)


class ServiceSaveMixin(admin.ModelAdmin):
    """For admins whose `save_model` calls a service: a refusal the form could not foresee (another change got there
    between the form's checks and the save) undoes the save and is shown on the page again, never as a 500 nor
    after a "saved successfully"."""

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict[str, Any] | None = None) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


def confirm_bulk(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, *, action: str, title: str,
                 warning: str) -> TemplateResponse | None:
    """A changelist action's confirmation page (as Django's own "delete selected"): answers the page until the
    operator confirms, then None so that the action runs."""
    if request.POST.get("confirmed") == "yes":
        return None
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts, "title": title, "warning": warning, "objects": list(queryset), "action": action,
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/admin_ui/confirm_bulk.html", context)


def for_each_selected(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet,
                      run: Callable[[Any], object], *, done: str, name: Callable[[Any], str] = str) -> int:
    """A changelist action's loop: `run(record)` (a service call) on each selected record in turn, in the order of
    their ids; a record the service refuses is named in an error message ("Pro v2: <why>") and the others go on;
    then one message says what was done, `done` with the count in place of "{}" ("Voided {}." reads "Voided 2
    grants."). Returns how many were done."""
    count = 0
    for obj in queryset.order_by("pk"):
        try:
            run(obj)
        except DomainError as exc:
            modeladmin.message_user(request, f"{name(obj)}: {exc.detail}", messages.ERROR)
        else:
            count += 1
    if count:
        noun = modeladmin.opts.verbose_name if count == 1 else modeladmin.opts.verbose_name_plural
        modeladmin.message_user(request, done.format(f"{count} {noun}"), messages.SUCCESS)
    return count


def service_form_page(
    modeladmin: admin.ModelAdmin, request: HttpRequest, *, form: forms.Form,
    run: Callable[[dict[str, Any]], tuple[str, str]], title: str, submit: str, cancel_url: str,
    error_fields: tuple[tuple[str, str], ...] = (),
) -> HttpResponse:
    """A page of its own whose valid submit calls a service, outside the admin's transaction (the service may ask a
    remote one, e.g. Stripe): `run(cleaned_data)` gives the message and the URL to go to; a refusal shows on the
    form."""
    if request.method == "POST" and form.is_valid():
        try:
            message, url = run(form.cleaned_data)
        except DomainError as exc:
            show_error(form, exc, error_fields)
        else:
            messages.success(request, message)
            return HttpResponseRedirect(url)
    return editor_response(modeladmin, request, form=form, title=title, original=None, submit=submit,
                           cancel_url=cancel_url)


def editor_response(
    modeladmin: admin.ModelAdmin, request: HttpRequest, *, form: forms.Form, title: str, original: Any,
    submit: str, cancel_url: str, confirm: str = "", destructive: bool = False,
) -> TemplateResponse:
    """A typed form in the admin chrome for an add page or for one part of a record (a plan's rate card): the form's
    groups when it is a `FieldsetsForm`, a confirmation above the submit button for destructive steps."""
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts, "original": original, "title": title, "form": form, "submit": submit,
        "cancel_url": cancel_url, "confirm": confirm, "destructive": destructive,
        "groups": form.groups() if isinstance(form, FieldsetsForm) else [],
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, "admin/admin_ui/editor_form.html", context)
