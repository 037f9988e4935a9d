"""Entity lists: ``/v1/projects/{id}/datasets`` in ODK Central's layout — the datasets, one
dataset's properties and forms, its entities (JSON and CSV), one entity and its versions.

Each route first catches the dataset up with its submissions (``sync_entities``), so what it
answers is what a tablet would download now. Central's dataset and entity verbs map onto the
verbs every project role already holds for forms and submissions: whoever may list a
project's forms may list its datasets; whoever may read its submissions may read the
entities made from them.
"""

from __future__ import annotations

from flask import Response, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from server import web
from server.api.schemas import (
    DatasetExtendedSchema,
    DatasetMetadataSchema,
    DatasetSchema,
    EntityDetailSchema,
    EntitySchema,
    EntityVersionDataSchema,
)
from server.auth import roles
from server.auth.access import load_project
from server.errors import Problems
from server.models import Dataset, Entity
from server.queries import entities as q
from server.services import entities as svc
from server.storage import attachment_disposition

blp = Blueprint("entities", __name__, url_prefix="/v1/projects/<int:project_id>/datasets",
                description="Entity lists (datasets) and their entities")

DATASET_LIST = roles.FORM_LIST
DATASET_READ = roles.FORM_READ
ENTITY_LIST = roles.SUBMISSION_LIST
ENTITY_READ = roles.SUBMISSION_READ
EXTENDED_HEADER = "X-Extended-Metadata"


def _extended() -> bool:
    return request.headers.get(EXTENDED_HEADER, "").strip().lower() == "true"


def _dataset(project_id: int, name: str, verb: str) -> Dataset:
    """The dataset, caught up with its submissions, if the caller holds ``verb`` (else 403,
    or 404 for a project they cannot see)."""
    project = load_project(web.db(), web.actor(), project_id, verb)
    svc.sync_entities(web.db(), project.id, [name])
    dataset = q.get_dataset(web.db(), project.id, name)
    if dataset is None:
        raise Problems.not_found()
    return dataset


def _entity(dataset: Dataset, uuid: str) -> Entity:
    entity = q.get_entity(web.db(), dataset.id, uuid.strip().lower())
    if entity is None:
        raise Problems.not_found()
    return entity


@blp.route("")
class Datasets(MethodView):
    @blp.response(200, DatasetSchema(many=True))
    def get(self, project_id):
        """The project's datasets; ``X-Extended-Metadata: true`` adds entity counts."""
        project = load_project(web.db(), web.actor(), project_id, DATASET_LIST)
        if not _extended():
            datasets = svc.sync_datasets(web.db(), project.id)
            return [{"dataset": d} for _, d in sorted(datasets.items())]
        svc.sync_entities(web.db(), project.id)
        return jsonify(DatasetExtendedSchema(many=True).dump(
            [{"dataset": d, "stats": q.dataset_stats(web.db(), d.id)}
             for d in q.list_datasets(web.db(), project.id)]))


@blp.route("/<name>")
class DatasetByName(MethodView):
    @blp.response(200, DatasetMetadataSchema)
    def get(self, project_id, name):
        """The dataset, its properties (and the forms writing each), the forms that create
        or update its entities, and the forms that read it as ``<name>.csv``."""
        dataset = _dataset(project_id, name, DATASET_READ)
        return svc.dataset_metadata(web.db(), dataset)


@blp.route("/<name>/entities")
class Entities(MethodView):
    @blp.response(200, EntitySchema(many=True))
    def get(self, project_id, name):
        """The dataset's entities, newest first."""
        dataset = _dataset(project_id, name, ENTITY_LIST)
        return [{"entity": e, "version": v}
                for e, v in q.list_entities_with_current(web.db(), dataset.id)]


@blp.route("/<name>/entities.csv")
class EntitiesCsv(MethodView):
    @blp.response(200)
    def get(self, project_id, name):
        """Every entity as CSV (Central's export columns), with an ETag."""
        dataset = _dataset(project_id, name, ENTITY_LIST)
        data = svc.export_csv(web.db(), dataset)
        response = Response(data, mimetype=svc.CSV_CONTENT_TYPE)
        response.headers["Content-Disposition"] = attachment_disposition(f"{dataset.name}.csv")
        response.add_etag()
        return response.make_conditional(request)


@blp.route("/<name>/entities/<uuid>")
class EntityByUuid(MethodView):
    @blp.response(200, EntityDetailSchema)
    def get(self, project_id, name, uuid):
        """One entity, with its current version's data and what was sent to make it."""
        dataset = _dataset(project_id, name, ENTITY_READ)
        entity = _entity(dataset, uuid)
        return {"entity": entity, "version": q.get_version(web.db(), entity.id, entity.version)}


@blp.route("/<name>/entities/<uuid>/versions")
class EntityVersions(MethodView):
    @blp.response(200, EntityVersionDataSchema(many=True))
    def get(self, project_id, name, uuid):
        """Every version of the entity, oldest first."""
        dataset = _dataset(project_id, name, ENTITY_READ)
        entity = _entity(dataset, uuid)
        return [{"version": v, "current": v.version == entity.version}
                for v in q.list_versions(web.db(), entity.id)]
