"""Back office for plans and add-ons: the plan editor.

A plan's page shows the whole plan as a billing person reads it (phases, their rate cards with prices,
commitments, discounts and entitlements, the add-ons it sells, every version of its key with its status). While the
plan is a draft, each part is edited on its own typed form; saving replaces the draft through `plan_edit`, the
service behind the API's `PUT /plans/{id}`, so the API's rules apply and a rejection is shown on the form. Publish,
archive, new version and delete are actions on the page. Nothing is ever hard-deleted: deleting a draft is the API's
soft delete, and a published version is archived.
"""

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from rest_framework import serializers

from catalog.admin_display import commitments_text, discounts_text, entitlement_text, every, price_lines
from catalog.admin_forms import (
    AddonCreateForm,
    AddonDetailsForm,
    PhaseAddForm,
    PhaseForm,
    PlanAddonForm,
    PlanCreateForm,
    PlanDetailsForm,
    RateCardForm,
)
from catalog.admin_inputs import (
    PHASE_FIELDS,
    PLAN_FIELDS,
    RATE_CARD_FIELDS,
    Parts,
    RateCardInput,
    rate_card_initial,
    rate_card_input,
    readable_problems,
    service_errors,
)
from catalog.features import feature_list_qs
from catalog.models import Addon, CatalogStatus, EffectiveDatedVersion, Plan, PlanAddon, RateCard
from catalog.services.addons import (
    AddonInput,
    addon_archive,
    addon_as_input,
    addon_create,
    addon_delete,
    addon_edit,
    addon_new_version,
    addon_publish,
    addon_validation_errors,
    plan_addon_create,
    plan_addon_delete,
)
from catalog.services.plans import (
    PhaseInput,
    PlanInput,
    plan_archive,
    plan_as_input,
    plan_create,
    plan_delete,
    plan_edit,
    plan_new_version,
    plan_publish,
    plan_validation_errors,
)
from catalog.services.versioning import status_q
from openmeter_site.admin_ui.actions import (
    ActionForm,
    ObjectAction,
    ObjectActionsMixin,
    confirm_bulk,
    editor_response,
    for_each_selected,
)
from openmeter_site.admin_ui.display import duration_text, when, when_text
from openmeter_site.core.errors import DomainError, InvalidInput, NotFound

Errors = tuple[tuple[str, str], ...]


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(s.value, s.label) for s in CatalogStatus]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return queryset.filter(status_q(value, timezone.now())) if value else queryset


def status_badge(obj: EffectiveDatedVersion) -> str:
    return format_html('<span class="om-status om-status-{}">{}</span>', obj.status, obj.status)


def rate_card_rows(cards: list[RateCard], currency: str) -> list[dict[str, Any]]:
    return [
        {
            "card": card,
            "feature": card.feature.name if card.feature else "",
            "charged": "usage" if card.type == "usage_based" else "fee",
            "price": price_lines(card, currency, card.billing_cadence),
            "cadence": every(card.billing_cadence),
            "commitments": commitments_text(card, currency),
            "discounts": discounts_text(card),
            "entitlement": entitlement_text(card, card.billing_cadence),
        }
        for card in cards
    ]


def posted(request: HttpRequest) -> Any:
    """The submitted data of a POST (even an empty one, as a confirmation's), else None: the form is unbound."""
    return request.POST if request.method == "POST" else None


def add_errors(form: forms.Form, pairs: list[tuple[str | None, str]]) -> None:
    for field, message in pairs:
        form.add_error(field if field in form.fields else None, message)


class DraftRefused(Exception):
    """A catalog service refused an edit of a draft: its error, and the draft's parts as edited (what the error's
    paths point into: after adding a phase in front, `phases[1]` is the phase that was first)."""

    def __init__(self, error: DomainError, parts: Parts) -> None:
        super().__init__(error.detail)
        self.error, self.parts = error, parts


def edit_draft(service: Callable[..., Any], *, edit: Callable[[Any], Any], **ids: str) -> None:
    """`plan_edit` or `addon_edit` with `edit`; a refusal raises DraftRefused."""
    edited: list[PlanInput | AddonInput] = []

    def keep(data: Any) -> Any:
        edited.append(edit(data))
        return edited[-1]

    try:
        service(edit=keep, **ids)
    except DomainError as exc:
        raise DraftRefused(exc, Parts.of(edited[-1]) if edited else Parts()) from exc


def publish_draft(obj: EffectiveDatedVersion, publish: Callable[[], Any], parts: Callable[[], Parts]) -> Any:
    """Publishes through the service; what stops it is said in the operator's words (phase and rate card names,
    the forms' labels)."""
    try:
        return publish()
    except InvalidInput as exc:
        errors = exc.extensions.get("validationErrors")
        if not errors:
            raise
        problems = "; ".join(readable_problems(errors, parts()))
        raise InvalidInput(f"not ready to publish: {problems}") from exc


class PublishForm(ActionForm):
    when = forms.ChoiceField(choices=[("now", "now"), ("at", "at a later time")], initial="now",
                             widget=forms.RadioSelect, label="Effective")
    at = forms.SplitDateTimeField(required=False, label="From", help_text="In your time zone.",
                                  widget=forms.SplitDateTimeWidget(date_attrs={"type": "date"},
                                                                   time_attrs={"type": "time"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("when") == "at" and not data.get("at"):
            self.add_error("at", "Give the time the version takes effect.")
        return data


def effective_from(data: dict[str, Any]) -> dt.datetime | None:
    return data["at"] if data["when"] == "at" else None


class CatalogEditorAdmin(ObjectActionsMixin, admin.ModelAdmin):
    """What plans and add-ons share: the record's page is read-only and every change goes through an editor page
    (a typed form whose submit calls the catalog service); no hard delete."""

    list_filter = [StatusFilter, "currency"]
    search_fields = ["key", "name", "id"]
    ordering = ["key", "-version"]

    changelist_title = ""
    prefetch: tuple[str, ...] = ()

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": self.changelist_title, **(extra_context or {})})

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # the record form is never saved directly (editor pages and actions change it through the services)
        return obj is None and super().has_change_permission(request)

    def has_object_action_permission(self, request: HttpRequest, obj: Any) -> bool:
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a draft is deleted (softly) with the Delete action; a published version is archived

    @admin.display(description="status")
    def status_badge(self, obj: EffectiveDatedVersion) -> str:
        return status_badge(obj)

    @admin.display(description="effective from", ordering="effective_from")
    def effective_from_when(self, obj: EffectiveDatedVersion) -> str:
        return when(obj.effective_from)

    @admin.display(description="effective to", ordering="effective_to")
    def effective_to_when(self, obj: EffectiveDatedVersion) -> str:
        return when(obj.effective_to)

    def change_url(self, obj: Any) -> str:
        return reverse(f"admin:catalog_{self.opts.model_name}_change", args=[obj.pk])

    def record(self, object_id: str) -> Any:
        """The live plan or add-on with its rate cards (and phases)."""
        found = self.model._default_manager.filter(pk=object_id, deleted_at__isnull=True).prefetch_related(
            *self.prefetch).first()
        if found is None:
            raise Http404(f"no {self.opts.verbose_name} {object_id!r}")
        return found

    def draft(self, request: HttpRequest, object_id: str) -> Any:
        found = self.record(object_id)
        if not self.editable(request, found):
            raise Http404(f"{named(found)} is {found.status}: only drafts are edited (make a new version)")
        return found

    def editable(self, request: HttpRequest, obj: EffectiveDatedVersion) -> bool:
        return obj.status == CatalogStatus.DRAFT and self.has_object_action_permission(request, obj)

    def editor_view(
        self, request: HttpRequest, obj: Any, *, title: str, form: forms.Form, save: Callable[[dict[str, Any]], str],
        prefix: Callable[[], str] = lambda: "", fields: Errors = (), confirm: str = "", destructive: bool = False,
        submit: str = "Save",
    ) -> HttpResponse:
        """A typed form in the admin chrome; on submit `save(cleaned_data)` calls the service and returns the
        message. A rejection is put on the fields it names (`prefix` is the edited part's path in the input)."""
        if not self.has_object_action_permission(request, obj):
            raise Http404("not allowed")
        if request.method == "POST" and form.is_valid():
            try:
                message = save(form.cleaned_data)
            except serializers.ValidationError as exc:  # the API's validator, on this part's own fields
                add_errors(form, service_errors(exc, prefix="", fields=fields))
            except DraftRefused as exc:
                add_errors(form, service_errors(exc.error, prefix=prefix(), fields=fields, parts=exc.parts))
            except DomainError as exc:
                add_errors(form, service_errors(exc, prefix=prefix(), fields=fields))
            else:
                messages.success(request, message)
                return HttpResponseRedirect(self.change_url(obj))
        return editor_response(self, request, form=form, title=title, original=obj, submit=submit, confirm=confirm,
                               destructive=destructive, cancel_url=self.change_url(obj))

    def created_view(self, request: HttpRequest, form: forms.Form, create: Callable[[dict[str, Any]], Any],
                     fields: Errors) -> HttpResponse:
        """The add page: a typed form whose submit calls the create service."""
        if not self.has_add_permission(request):
            raise Http404("not allowed")
        if request.method == "POST" and form.is_valid():
            try:
                obj = create(form.cleaned_data)
            except DomainError as exc:
                add_errors(form, service_errors(exc, prefix="", fields=fields))
            else:
                messages.success(request, f"{named(obj)} created as a draft: add its rate cards, then publish it.")
                return HttpResponseRedirect(self.change_url(obj))
        return editor_response(self, request, form=form, title=f"Add {self.opts.verbose_name}", original=None,
                               submit="Create draft",
                               cancel_url=reverse(f"admin:catalog_{self.opts.model_name}_changelist"))

    def versions(self, obj: EffectiveDatedVersion) -> list[dict[str, Any]]:
        """Every version of the key, newest first, with its status (deleted drafts too, marked so)."""
        rows = list(type(obj)._default_manager.filter(key=obj.key).order_by("-version"))
        in_use = self.versions_in_use(rows)
        return [
            {"obj": v, "status": mark_safe('<span class="om-status om-status-deleted">deleted</span>')
             if v.deleted_at else status_badge(v), "from": when(v.effective_from), "to": when(v.effective_to),
             "in_use": None if in_use is None else in_use.get(v.pk, 0)}
            for v in rows
        ]

    def versions_in_use(self, versions: list[Any]) -> dict[str, int] | None:
        """How many subscriptions run on each version, where an app above the catalog knows (None: unknown)."""
        return None


def named(obj: EffectiveDatedVersion) -> str:
    """A version as billing people name it: "Pro v2"."""
    return f"{obj.name} v{obj.version}"


def _publish_message(obj: EffectiveDatedVersion, effect: str) -> str:
    if obj.status == CatalogStatus.SCHEDULED:
        return f"{named(obj)} is scheduled: it takes effect at {when_text(obj.effective_from)}."
    return f"{named(obj)} is published: {effect}."


def _redirect_to(obj: Any, message: str, request: HttpRequest) -> HttpResponse:
    messages.success(request, message)
    return HttpResponseRedirect(reverse(f"admin:catalog_{obj._meta.model_name}_change", args=[obj.pk]))


# --- plans ------------------------------------------------------------------------------------------------------------


def _phase_index(data: PlanInput, key: str) -> int:
    for i, phase in enumerate(data.phases):
        if phase.key == key:
            return i
    raise NotFound(f"the plan has no phase {key!r} (changed meanwhile?)")


def _card_index(cards: list[RateCardInput], key: str) -> int:
    for i, card in enumerate(cards):
        if card.key == key:
            return i
    raise NotFound(f"no rate card {key!r} (changed meanwhile?)")


def _replace_phase(data: PlanInput, index: int, phase: PhaseInput | None, at: int | None = None) -> PlanInput:
    phases = list(data.phases)
    if phase is None:
        del phases[index]
    elif at is not None:
        phases.insert(at, phase)
    else:
        phases[index] = phase
    return dataclasses.replace(data, phases=phases)


def _plan_parts(plan: Plan) -> Parts:
    return Parts.of(plan_as_input(plan))


def _plan_publish(request: HttpRequest, plan: Plan, data: dict[str, Any]) -> str:
    published = publish_draft(plan, lambda: plan_publish(plan_id=plan.pk, at=effective_from(data)),
                              lambda: _plan_parts(plan))
    return _publish_message(published, "new subscriptions can use it")


def _plan_archive(request: HttpRequest, plan: Plan, data: dict[str, Any]) -> str:
    plan_archive(plan_id=plan.pk)
    return f"{named(plan)} is archived: no new subscriptions; existing subscriptions continue."


def _plan_new_version(request: HttpRequest, plan: Plan, data: dict[str, Any]) -> HttpResponse:
    draft = plan_new_version(plan_id=plan.pk)
    message = f"{named(draft)} is a new draft copied from v{plan.version}: edit it, then publish it."
    return _redirect_to(draft, message, request)


def _plan_delete(request: HttpRequest, plan: Plan, data: dict[str, Any]) -> HttpResponse:
    plan_delete(plan_id=plan.pk)
    messages.success(request, f"Draft {named(plan)} deleted.")
    return HttpResponseRedirect(reverse("admin:catalog_plan_changelist"))


def _has_draft(obj: EffectiveDatedVersion) -> bool:
    return type(obj)._default_manager.filter(key=obj.key, effective_from__isnull=True, deleted_at__isnull=True).exists()


def _live(obj: EffectiveDatedVersion) -> bool:
    return obj.deleted_at is None


@admin.register(Plan)
class PlanAdmin(CatalogEditorAdmin):
    change_form_template = "admin/catalog/plan/change_form.html"
    changelist_title = "Plans"
    prefetch = ("phases__rate_cards__feature",)
    list_display = ["name", "key", "version", "status_badge", "currency", "cadence", "effective_from_when"]
    list_display_links = ["name", "key", "version"]
    fieldsets = [
        (None, {"fields": [("name", "key"), ("status_badge", "version"), ("currency", "cadence"),
                           ("effective_from_when", "effective_to_when"), "description"]}),
        ("Billing", {"fields": [("pro_rating_enabled", "billables_must_align"), "settlement_mode"]}),
        ("More", {"fields": ["metadata_rows", "id"], "classes": ["collapse"]}),
    ]
    readonly_fields = ["name", "key", "version", "status_badge", "currency", "cadence", "description",
                       "pro_rating_enabled", "billables_must_align", "settlement_mode", "effective_from_when",
                       "effective_to_when", "metadata_rows", "id"]
    actions = ["publish", "archive", "new_version"]
    object_actions = (
        ObjectAction("publish", "Publish", run=_plan_publish, form=PublishForm,
                     description="Publishing makes this version the one new subscriptions get; the version in "
                                 "effect until then is closed when this one starts.",
                     available=lambda p: _live(p) and p.status in (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED)),
        ObjectAction("new_version", "New version", run=_plan_new_version,
                     description="A draft copy of this version (phases, rate cards, add-ons) to edit and publish.",
                     available=lambda p: _live(p) and p.status != CatalogStatus.DRAFT and not _has_draft(p)),
        ObjectAction("archive", "Archive", run=_plan_archive, destructive=True,
                     confirm="Archiving ends sales of this version now: no new subscriptions can use it. Existing "
                             "subscriptions continue unchanged.",
                     available=lambda p: _live(p) and p.status == CatalogStatus.ACTIVE),
        ObjectAction("delete_draft", "Delete draft", run=_plan_delete, destructive=True,
                     confirm="The draft is removed from the catalog. Published versions are not affected.",
                     available=lambda p: _live(p) and p.status == CatalogStatus.DRAFT),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Plan]:
        return super().get_queryset(request).filter(deleted_at__isnull=True)

    @admin.display(description="billing cadence", ordering="billing_cadence")
    def cadence(self, plan: Plan) -> str:
        return duration_text(plan.billing_cadence)

    @admin.display(description="metadata")
    def metadata_rows(self, obj: EffectiveDatedVersion) -> str:
        return ", ".join(f"{k}: {v}" for k, v in (obj.metadata or {}).items()) or "—"

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<str:object_id>/details/", view(self.details_view), name="catalog_plan_details"),
            path("<str:object_id>/phases/add/", view(self.phase_add_view), name="catalog_plan_phase_add"),
            path("<str:object_id>/phases/<str:phase>/", view(self.phase_edit_view), name="catalog_plan_phase"),
            path("<str:object_id>/phases/<str:phase>/remove/", view(self.phase_remove_view),
                 name="catalog_plan_phase_remove"),
            path("<str:object_id>/phases/<str:phase>/cards/add/", view(self.card_add_view),
                 name="catalog_plan_card_add"),
            path("<str:object_id>/phases/<str:phase>/cards/<str:card>/", view(self.card_edit_view),
                 name="catalog_plan_card"),
            path("<str:object_id>/phases/<str:phase>/cards/<str:card>/remove/", view(self.card_remove_view),
                 name="catalog_plan_card_remove"),
            path("<str:object_id>/addons/add/", view(self.addon_add_view), name="catalog_plan_addon_add"),
            path("<str:object_id>/addons/<str:link>/remove/", view(self.addon_remove_view),
                 name="catalog_plan_addon_remove"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        plan = self.record(object_id)
        editable = self.editable(request, plan)
        phases = [
            {"phase": phase, "duration": duration_text(phase.duration, empty="until the subscription ends"),
             "cards": rate_card_rows(list(phase.rate_cards.all()), plan.currency)}
            for phase in plan.phases.all()
        ]
        links = PlanAddon.objects.filter(plan=plan, deleted_at__isnull=True).select_related("addon")
        context = {
            "title": f"{plan.name} · v{plan.version}",
            "subtitle": None,
            "editable": editable,
            "addons_editable": editable or (plan.status == CatalogStatus.SCHEDULED and
                                            self.has_object_action_permission(request, plan)),
            "phases": phases,
            "plan_addons": links,
            "versions": self.versions(plan),
            "problems": readable_problems(plan_validation_errors(plan), _plan_parts(plan))
            if plan.status == CatalogStatus.DRAFT else [],
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **context})

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
                 ) -> HttpResponse:
        form = PlanCreateForm(posted(request), initial={"billing_cadence": "P1M"})

        def create(d: dict[str, Any]) -> Plan:
            first = PhaseInput(key="default", name="Default", duration=None)
            return plan_create(key=d["key"], data=PlanInput(
                name=d["name"], description=d["description"] or None, metadata=d["metadata"] or None,
                currency=d["currency"], billing_cadence=d["billing_cadence"], phases=[first],
                pro_rating_enabled=d["pro_rating_enabled"], billables_must_align=d["billables_must_align"],
                settlement_mode=d["settlement_mode"],
            ))

        return self.created_view(request, form, create, PLAN_FIELDS)

    # --- editor pages -------------------------------------------------------------------------------------------

    def details_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plan = self.draft(request, object_id)
        initial = {"name": plan.name, "description": plan.description, "billing_cadence": plan.billing_cadence,
                   "pro_rating_enabled": plan.pro_rating_enabled, "billables_must_align": plan.billables_must_align,
                   "settlement_mode": plan.settlement_mode, "metadata": plan.metadata or {}}
        form = PlanDetailsForm(posted(request), initial=initial)

        def save(d: dict[str, Any]) -> str:
            edit_draft(plan_edit, plan_id=plan.pk, edit=lambda data: dataclasses.replace(
                data, name=d["name"], description=d["description"] or None, metadata=d["metadata"] or None,
                billing_cadence=d["billing_cadence"], pro_rating_enabled=d["pro_rating_enabled"],
                billables_must_align=d["billables_must_align"], settlement_mode=d["settlement_mode"]))
            return f"{named(plan)} saved."

        return self.editor_view(request, plan, title=f"Edit {named(plan)}", form=form, save=save, fields=PLAN_FIELDS)

    def phase_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plan = self.draft(request, object_id)
        names = [p.name for p in plan.phases.all()]
        form = PhaseAddForm(posted(request), phase_names=names)

        def save(d: dict[str, Any]) -> str:
            phase = PhaseInput(key=d["key"], name=d["name"], duration=d["duration"],
                               description=d["description"] or None, metadata=d["metadata"] or None)
            edit_draft(plan_edit, plan_id=plan.pk, edit=lambda data: _replace_phase(data, 0, phase, at=d["position"]))
            return f"Phase “{d['name']}” added to {named(plan)}."

        return self.editor_view(request, plan, title=f"Add a phase to {named(plan)}", form=form, save=save,
                                prefix=lambda: f"phases[{form.cleaned_data['position']}]", fields=PHASE_FIELDS)

    def phase_edit_view(self, request: HttpRequest, object_id: str, phase: str) -> HttpResponse:
        plan = self.draft(request, object_id)
        current = next((p for p in plan.phases.all() if p.key == phase), None)
        if current is None:
            raise Http404(f"no phase {phase!r}")
        initial = {"key": current.key, "name": current.name, "duration": current.duration,
                   "description": current.description, "metadata": current.metadata or {}}
        form = PhaseForm(posted(request), initial=initial)

        def edit(data: PlanInput, d: dict[str, Any]) -> PlanInput:
            i = _phase_index(data, phase)
            changed = dataclasses.replace(data.phases[i], key=d["key"], name=d["name"], duration=d["duration"],
                                          description=d["description"] or None, metadata=d["metadata"] or None)
            return _replace_phase(data, i, changed)

        def save(d: dict[str, Any]) -> str:
            edit_draft(plan_edit, plan_id=plan.pk, edit=lambda data: edit(data, d))
            return f"Phase “{d['name']}” saved."

        return self.editor_view(request, plan, title=f"Phase “{current.name}” of {named(plan)}", form=form, save=save,
                                prefix=lambda: f"phases[{current.index}]", fields=PHASE_FIELDS)

    def phase_remove_view(self, request: HttpRequest, object_id: str, phase: str) -> HttpResponse:
        plan = self.draft(request, object_id)

        def save(d: dict[str, Any]) -> str:
            edit_draft(plan_edit, plan_id=plan.pk, edit=lambda data: _replace_phase(data, _phase_index(data, phase), None))
            return f"Phase {phase} removed from {named(plan)}."

        return self.editor_view(request, plan, title=f"Remove phase {phase} from {named(plan)}",
                                form=forms.Form(posted(request)), save=save, destructive=True, submit="Remove phase",
                                confirm="The phase and its rate cards are removed from this draft.")

    def _card_form(self, request: HttpRequest, plan: Plan, initial: dict[str, Any]) -> RateCardForm:
        return RateCardForm(posted(request), initial=initial, currency=plan.currency,
                            features=list(feature_list_qs()))

    def card_add_view(self, request: HttpRequest, object_id: str, phase: str) -> HttpResponse:
        plan = self.draft(request, object_id)
        current = next((p for p in plan.phases.all() if p.key == phase), None)
        if current is None:
            raise Http404(f"no phase {phase!r}")
        form = self._card_form(request, plan, {"billing_cadence": plan.billing_cadence, "price_model": "flat"})
        at = len(current.rate_cards.all())

        def edit(data: PlanInput, card: RateCardInput) -> PlanInput:
            i = _phase_index(data, phase)
            return _replace_phase(data, i, dataclasses.replace(data.phases[i], rate_cards=[*data.phases[i].rate_cards,
                                                                                            card]))

        def save(d: dict[str, Any]) -> str:
            card = rate_card_input(d)
            edit_draft(plan_edit, plan_id=plan.pk, edit=lambda data: edit(data, card))
            return f"Rate card “{d['name']}” added to phase {current.name}."

        return self.editor_view(request, plan, title=f"Add a rate card to {current.name} of {named(plan)}", form=form,
                                save=save, prefix=lambda: f"phases[{current.index}].rateCards[{at}]",
                                fields=RATE_CARD_FIELDS)

    def card_edit_view(self, request: HttpRequest, object_id: str, phase: str, card: str) -> HttpResponse:
        plan = self.draft(request, object_id)
        current = next((p for p in plan.phases.all() if p.key == phase), None)
        stored = next((c for c in current.rate_cards.all() if c.key == card), None) if current else None
        if current is None or stored is None:
            raise Http404(f"no rate card {card!r} in phase {phase!r}")
        form = self._card_form(request, plan, rate_card_initial(stored))

        def edit(data: PlanInput, changed: RateCardInput) -> PlanInput:
            i = _phase_index(data, phase)
            cards = list(data.phases[i].rate_cards)
            cards[_card_index(cards, card)] = changed
            return _replace_phase(data, i, dataclasses.replace(data.phases[i], rate_cards=cards))

        def save(d: dict[str, Any]) -> str:
            changed = rate_card_input(d)
            edit_draft(plan_edit, plan_id=plan.pk, edit=lambda data: edit(data, changed))
            return f"Rate card “{d['name']}” saved."

        return self.editor_view(request, plan, title=f"Rate card “{stored.name}” of {named(plan)}", form=form, save=save,
                                prefix=lambda: f"phases[{current.index}].rateCards[{stored.index}]",
                                fields=RATE_CARD_FIELDS)

    def card_remove_view(self, request: HttpRequest, object_id: str, phase: str, card: str) -> HttpResponse:
        plan = self.draft(request, object_id)

        def edit(data: PlanInput) -> PlanInput:
            i = _phase_index(data, phase)
            cards = list(data.phases[i].rate_cards)
            del cards[_card_index(cards, card)]
            return _replace_phase(data, i, dataclasses.replace(data.phases[i], rate_cards=cards))

        def save(d: dict[str, Any]) -> str:
            edit_draft(plan_edit, plan_id=plan.pk, edit=edit)
            return f"Rate card {card} removed from phase {phase}."

        return self.editor_view(request, plan, title=f"Remove rate card {card} from {named(plan)}",
                                form=forms.Form(posted(request)), save=save, destructive=True,
                                confirm=f"Rate card {card} is removed from phase {phase} of this draft.",
                                submit="Remove rate card")

    def addon_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plan = self.record(object_id)
        addons = Addon.objects.filter(status_q(CatalogStatus.ACTIVE, timezone.now()), currency=plan.currency,
                                      deleted_at__isnull=True).order_by("key", "-version")
        phases = [(p.key, p.name) for p in plan.phases.all()]
        form = PlanAddonForm(posted(request), addons=list(addons), phases=phases)

        def save(d: dict[str, Any]) -> str:
            link = plan_addon_create(plan_id=plan.pk, addon_id=d["addon"], from_plan_phase=d["from_plan_phase"],
                                     max_quantity=d["max_quantity"])
            return f"{named(plan)} now sells the add-on {named(link.addon)}."

        return self.editor_view(request, plan, title=f"Sell an add-on with {named(plan)}", form=form, save=save,
                                fields=(("addonId", "addon"), ("fromPlanPhase", "from_plan_phase"),
                                        ("maxQuantity", "max_quantity")))

    def addon_remove_view(self, request: HttpRequest, object_id: str, link: str) -> HttpResponse:
        plan = self.record(object_id)

        def save(d: dict[str, Any]) -> str:
            plan_addon_delete(plan_id=plan.pk, plan_addon_id=link)
            return f"{named(plan)} no longer sells that add-on."

        return self.editor_view(request, plan, title=f"Stop selling an add-on with {named(plan)}",
                                form=forms.Form(posted(request)), save=save, destructive=True, submit="Remove",
                                confirm="New subscriptions to this plan can no longer buy the add-on; subscriptions "
                                        "that bought it keep it.")

    # --- changelist actions -------------------------------------------------------------------------------------

    @admin.action(description="Publish selected drafts (effective now)")
    def publish(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        for_each_selected(self, request, queryset,
                          lambda p: publish_draft(p, lambda: plan_publish(plan_id=p.pk), lambda: _plan_parts(p)),
                          done="Published {}.", name=named)

    @admin.action(description="Archive selected plans (no new subscriptions)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Plan]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="archive", title="Archive plans",
                                    warning="Archived versions can no longer be subscribed to. Existing "
                                            "subscriptions continue unchanged.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset, lambda p: plan_archive(plan_id=p.pk), done="Archived {}.", name=named)
        return None

    @admin.action(description="New version of selected plans (a draft copy)")
    def new_version(self, request: HttpRequest, queryset: QuerySet[Plan]) -> None:
        for_each_selected(self, request, queryset, lambda p: plan_new_version(plan_id=p.pk),
                          done="Copied {} to a new draft version each.", name=named)


# --- add-ons ----------------------------------------------------------------------------------------------------------


def _addon_parts(addon: Addon) -> Parts:
    return Parts.of(addon_as_input(addon))


def _addon_publish(request: HttpRequest, addon: Addon, data: dict[str, Any]) -> str:
    published = publish_draft(addon, lambda: addon_publish(addon_id=addon.pk, at=effective_from(data)),
                              lambda: _addon_parts(addon))
    return _publish_message(published, "plans can sell it")


def _addon_archive(request: HttpRequest, addon: Addon, data: dict[str, Any]) -> str:
    addon_archive(addon_id=addon.pk)
    return f"{named(addon)} is archived: it can no longer be bought; subscriptions that bought it keep it."


def _addon_new_version(request: HttpRequest, addon: Addon, data: dict[str, Any]) -> HttpResponse:
    draft = addon_new_version(addon_id=addon.pk)
    return _redirect_to(draft, f"{named(draft)} is a new draft copied from v{addon.version}.", request)


def _addon_delete(request: HttpRequest, addon: Addon, data: dict[str, Any]) -> HttpResponse:
    addon_delete(addon_id=addon.pk)
    messages.success(request, f"Draft {named(addon)} deleted.")
    return HttpResponseRedirect(reverse("admin:catalog_addon_changelist"))


def _replace_card(data: AddonInput, key: str, card: RateCardInput | None) -> AddonInput:
    cards = list(data.rate_cards)
    if card is None:
        del cards[_card_index(cards, key)]
    elif key:
        cards[_card_index(cards, key)] = card
    else:
        cards.append(card)
    return dataclasses.replace(data, rate_cards=cards)


@admin.register(Addon)
class AddonAdmin(CatalogEditorAdmin):
    change_form_template = "admin/catalog/addon/change_form.html"
    changelist_title = "Add-ons"
    prefetch = ("rate_cards__feature",)
    list_display = ["name", "key", "version", "status_badge", "instance_type", "currency", "effective_from_when"]
    list_display_links = ["name", "key", "version"]
    list_filter = [StatusFilter, "instance_type", "currency"]
    fields = [("name", "key"), ("status_badge", "version"), ("instance_type", "currency"),
              ("effective_from_when", "effective_to_when"), "description", "id"]
    readonly_fields = ["name", "key", "version", "status_badge", "instance_type", "currency", "description",
                       "effective_from_when", "effective_to_when", "id"]
    actions = ["publish", "archive"]
    object_actions = (
        ObjectAction("publish", "Publish", run=_addon_publish, form=PublishForm,
                     description="Publishing lets plans sell this version.",
                     available=lambda a: _live(a) and a.status in (CatalogStatus.DRAFT, CatalogStatus.SCHEDULED)),
        ObjectAction("new_version", "New version", run=_addon_new_version,
                     available=lambda a: _live(a) and a.status != CatalogStatus.DRAFT and not _has_draft(a)),
        ObjectAction("archive", "Archive", run=_addon_archive, destructive=True,
                     confirm="Archiving stops sales of this version now; subscriptions that bought it keep it.",
                     available=lambda a: _live(a) and a.status == CatalogStatus.ACTIVE),
        ObjectAction("delete_draft", "Delete draft", run=_addon_delete, destructive=True,
                     confirm="The draft is removed from the catalog. Published versions are not affected.",
                     available=lambda a: _live(a) and a.status == CatalogStatus.DRAFT),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Addon]:
        return super().get_queryset(request).filter(deleted_at__isnull=True)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<str:object_id>/details/", view(self.details_view), name="catalog_addon_details"),
            path("<str:object_id>/cards/add/", view(self.card_add_view), name="catalog_addon_card_add"),
            path("<str:object_id>/cards/<str:card>/", view(self.card_edit_view), name="catalog_addon_card"),
            path("<str:object_id>/cards/<str:card>/remove/", view(self.card_remove_view),
                 name="catalog_addon_card_remove"),
            *super().get_urls(),
        ]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        addon = self.record(object_id)
        context = {
            "title": f"{addon.name} · v{addon.version}",
            "subtitle": None,
            "editable": self.editable(request, addon),
            "cards": rate_card_rows(list(addon.rate_cards.all()), addon.currency),
            "versions": self.versions(addon),
            "problems": readable_problems(addon_validation_errors(addon), _addon_parts(addon))
            if addon.status == CatalogStatus.DRAFT else [],
            "sold_with": PlanAddon.objects.filter(addon=addon, deleted_at__isnull=True).select_related("plan"),
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **context})

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
                 ) -> HttpResponse:
        form = AddonCreateForm(posted(request), initial={"instance_type": "single"})

        def create(d: dict[str, Any]) -> Addon:
            return addon_create(key=d["key"], data=AddonInput(
                name=d["name"], description=d["description"] or None, metadata=d["metadata"] or None,
                currency=d["currency"], instance_type=d["instance_type"], rate_cards=[]))

        return self.created_view(request, form, create, PLAN_FIELDS)

    def details_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        addon = self.draft(request, object_id)
        initial = {"name": addon.name, "description": addon.description, "instance_type": addon.instance_type,
                   "metadata": addon.metadata or {}}
        form = AddonDetailsForm(posted(request), initial=initial)

        def save(d: dict[str, Any]) -> str:
            edit_draft(addon_edit, addon_id=addon.pk, edit=lambda data: dataclasses.replace(
                data, name=d["name"], description=d["description"] or None, metadata=d["metadata"] or None,
                instance_type=d["instance_type"]))
            return f"{named(addon)} saved."

        return self.editor_view(request, addon, title=f"Edit {named(addon)}", form=form, save=save, fields=PLAN_FIELDS)

    def _card_form(self, request: HttpRequest, addon: Addon, initial: dict[str, Any]) -> RateCardForm:
        return RateCardForm(posted(request), initial=initial, currency=addon.currency,
                            features=list(feature_list_qs()))

    def card_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        addon = self.draft(request, object_id)
        form = self._card_form(request, addon, {"billing_cadence": "P1M", "price_model": "flat"})
        at = len(addon.rate_cards.all())

        def save(d: dict[str, Any]) -> str:
            card = rate_card_input(d)
            edit_draft(addon_edit, addon_id=addon.pk, edit=lambda data: _replace_card(data, "", card))
            return f"Rate card “{d['name']}” added to {named(addon)}."

        return self.editor_view(request, addon, title=f"Add a rate card to {named(addon)}", form=form, save=save,
                                prefix=lambda: f"rateCards[{at}]", fields=RATE_CARD_FIELDS)

    def card_edit_view(self, request: HttpRequest, object_id: str, card: str) -> HttpResponse:
        addon = self.draft(request, object_id)
        stored = next((c for c in addon.rate_cards.all() if c.key == card), None)
        if stored is None:
            raise Http404(f"no rate card {card!r}")
        form = self._card_form(request, addon, rate_card_initial(stored))

        def save(d: dict[str, Any]) -> str:
            changed = rate_card_input(d)
            edit_draft(addon_edit, addon_id=addon.pk, edit=lambda data: _replace_card(data, card, changed))
            return f"Rate card “{d['name']}” saved."

        return self.editor_view(request, addon, title=f"Rate card “{stored.name}” of {named(addon)}", form=form, save=save,
                                prefix=lambda: f"rateCards[{stored.index}]", fields=RATE_CARD_FIELDS)

    def card_remove_view(self, request: HttpRequest, object_id: str, card: str) -> HttpResponse:
        addon = self.draft(request, object_id)

        def save(d: dict[str, Any]) -> str:
            edit_draft(addon_edit, addon_id=addon.pk, edit=lambda data: _replace_card(data, card, None))
            return f"Rate card {card} removed from {named(addon)}."

        return self.editor_view(request, addon, title=f"Remove rate card {card} from {named(addon)}",
                                form=forms.Form(posted(request)), save=save, destructive=True,
                                confirm=f"Rate card {card} is removed from this draft.", submit="Remove rate card")

    @admin.action(description="Publish selected drafts (effective now)")
    def publish(self, request: HttpRequest, queryset: QuerySet[Addon]) -> None:
        for_each_selected(self, request, queryset,
                          lambda a: publish_draft(a, lambda: addon_publish(addon_id=a.pk), lambda: _addon_parts(a)),
                          done="Published {}.", name=named)

    @admin.action(description="Archive selected add-ons (no new purchases)")
    def archive(self, request: HttpRequest, queryset: QuerySet[Addon]) -> HttpResponse | None:
        confirmation = confirm_bulk(self, request, queryset, action="archive", title="Archive add-ons",
                                    warning="Archived versions can no longer be bought; subscriptions that bought "
                                            "them keep them.")
        if confirmation is not None:
            return confirmation
        for_each_selected(self, request, queryset, lambda a: addon_archive(addon_id=a.pk), done="Archived {}.", name=named)
        return None
