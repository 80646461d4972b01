import uuid

from django.db import models


class TimeStampedModel(models.Model):
    """UUID primary key (the public identifier) and creation/update times."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OrgQuerySet(models.QuerySet):
    def for_org(self, org):
        return self.filter(org=org)


class OrgOwnedModel(TimeStampedModel):
    """Every tenant-owned row carries its organization, even where it could be derived."""

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")

    objects = OrgQuerySet.as_manager()

    class Meta:
        abstract = True
