"""Wire ↔ Python for customers (the spec's CustomerCreate / CustomerReplaceUpdate / Customer)."""

from typing import Any

from rest_framework import serializers

from customers.models import Customer, CustomerSubject
from customers.services import CustomerInput
from openmeter_site.api.fields import MetadataField
from openmeter_site.core.lengths import DESCRIPTION_LENGTH, column_length
from openmeter_site.core.time import format_rfc3339


class AddressSerializer(serializers.Serializer):
    country = serializers.RegexField(r"^[A-Z]{2}$", required=False, allow_null=True)
    postalCode = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    state = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    city = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    line1 = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    line2 = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    phoneNumber = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class UsageAttributionSerializer(serializers.Serializer):
    subjectKeys = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=column_length(CustomerSubject, "subject_key"))
    )


class CustomerWriteSerializer(serializers.Serializer):
    """CustomerCreate and CustomerReplaceUpdate have the same fields."""

    name = serializers.CharField(min_length=1, max_length=column_length(Customer, "name"))
    description = serializers.CharField(max_length=DESCRIPTION_LENGTH, required=False, allow_null=True, allow_blank=True)
    metadata = MetadataField()
    key = serializers.CharField(min_length=1, max_length=column_length(Customer, "key"), required=False, allow_null=True)
    usageAttribution = UsageAttributionSerializer(required=False, allow_null=True)
    primaryEmail = serializers.CharField(required=False, allow_null=True,
                                         max_length=column_length(Customer, "primary_email"))
    currency = serializers.RegexField(r"^[A-Z]{3}$", required=False, allow_null=True)
    billingAddress = AddressSerializer(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        subjects = (attrs.get("usageAttribution") or {}).get("subjectKeys") or []
        if not attrs.get("key") and not subjects:
            raise serializers.ValidationError({"key": "either key or usageAttribution.subjectKeys must be provided"})
        return attrs

    def to_input(self) -> CustomerInput:
        v = self.validated_data
        address = v.get("billingAddress")
        return CustomerInput(
            name=v["name"],
            key=v.get("key"),
            description=v.get("description"),
            primary_email=v.get("primaryEmail"),
            currency=v.get("currency"),
            billing_address={k: val for k, val in address.items() if val is not None} if address else None,
            metadata=v.get("metadata") or {},
            subject_keys=(v.get("usageAttribution") or {}).get("subjectKeys") or [],
        )


def customer_to_api(customer: Customer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": customer.pk,
        "name": customer.name,
        "createdAt": format_rfc3339(customer.created_at),
        "updatedAt": format_rfc3339(customer.updated_at),
        "metadata": customer.metadata or {},
        "usageAttribution": {"subjectKeys": [s.subject_key for s in customer.subjects.all()]},
        "annotations": customer.annotations or {},
    }
    optional = {
        "key": customer.key,
        "description": customer.description,
        "primaryEmail": customer.primary_email,
        "currency": customer.currency,
        "billingAddress": customer.billing_address,
        "deletedAt": format_rfc3339(customer.deleted_at),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body
