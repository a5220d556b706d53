from django.urls import path

from entitlements.api import views as v

V2 = "api/v2/customers/<seg:owner>/entitlements"
V1 = "api/v1/subjects/<seg:owner>/entitlements"


def scoped(prefix: str, v2: bool) -> list:
    kw = {"v2": v2}
    return [
        path(prefix, v.EntitlementsView.as_view(**kw)),
        path(f"{prefix}/<seg:entitlement>", v.EntitlementView.as_view(**kw)),
        path(f"{prefix}/<seg:entitlement>/override", v.EntitlementOverrideView.as_view(**kw)),
        path(f"{prefix}/<seg:entitlement>/value", v.EntitlementValueView.as_view(**kw)),
        path(f"{prefix}/<seg:entitlement>/history", v.EntitlementHistoryView.as_view(**kw)),
        path(f"{prefix}/<seg:entitlement>/reset", v.EntitlementResetView.as_view(**kw)),
        path(f"{prefix}/<seg:entitlement>/grants", v.EntitlementGrantsView.as_view(**kw)),
    ]


urlpatterns = [
    *scoped(V2, v2=True),
    *scoped(V1, v2=False),
    path("api/v1/customers/<seg:owner>/access", v.CustomerAccessView.as_view()),
    path("api/v1/customers/<seg:owner>/entitlements/<seg:feature_key>/value", v.CustomerFeatureValueView.as_view()),
    path("api/v2/entitlements", v.EntitlementListView.as_view(v2=True)),
    path("api/v2/entitlements/<seg:entitlement_id>", v.EntitlementByIdView.as_view(v2=True)),
    path("api/v1/entitlements", v.EntitlementListView.as_view(v2=False)),
    path("api/v1/entitlements/<seg:entitlement_id>", v.EntitlementByIdView.as_view(v2=False)),
    path("api/v2/grants", v.GrantListView.as_view(v2=True)),
    path("api/v1/grants", v.GrantListView.as_view(v2=False)),
    path("api/v1/grants/<seg:grant_id>", v.GrantVoidView.as_view()),
]
