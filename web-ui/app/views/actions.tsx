// What a user can do to an object, as kubectl does it: scale, rollout restart, rollout undo,
// delete, suspend/resume and trigger a CronJob. Used on detail pages (full buttons) and in
// list rows (`compact`: small buttons named after the object).

import { useMemo, useState } from 'preact/hooks';
import { ApiError, again, request } from '../api/client';
import { RESOURCES, apiVersionOf, collectionPath, detailHref, listHref, objectPath } from '../api/resources';
import type { K8sObject, Resource } from '../api/resources';
import { useList } from '../api/watch';
import { ref, useAccess } from '../api/access';
import { Age, Pill, managedBy } from '../components/badges';
import { Modal } from '../components/modal';
import { ErrorBox } from '../components/page';
import { Link, navigate } from '../router';
import '../styles/actions.css';

const MERGE = 'application/merge-patch+json';
const JSON_PATCH = 'application/json-patch+json';
const REVISION = 'deployment.kubernetes.io/revision';
const CHANGE_CAUSE = 'kubernetes.io/change-cause';

const SCALABLE = new Set(['deployments', 'replicasets', 'statefulsets']);
const RESTARTABLE = new Set(['deployments', 'daemonsets', 'statefulsets']);

type Dialog = 'scale' | 'restart' | 'rollback' | 'delete' | null;

function errorOfCall(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError({ message: String((e as Error)?.message ?? e) });
}

/** `kubectl scale`: the scale subresource (all three scalable kinds serve it). */
async function scale(res: Resource, o: K8sObject, replicas: number): Promise<void> {
  await again(() =>
    request('PATCH', objectPath(res, o.metadata.namespace, o.metadata.name, 'scale'), {
      body: { spec: { replicas } },
      contentType: MERGE,
    }),
  );
}

/** `kubectl rollout restart`: a new template annotation makes the controller replace the pods. */
async function restart(res: Resource, o: K8sObject): Promise<void> {
  const patch = { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } };
  await again(() => request('PATCH', objectPath(res, o.metadata.namespace, o.metadata.name), { body: patch, contentType: MERGE }));
}

/** `kubectl delete` with background propagation (dependents go after the object); `force`: no grace period. */
async function remove(res: Resource, o: K8sObject, force = false): Promise<void> {
  const body: Record<string, unknown> = { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' };
  if (force) body.gracePeriodSeconds = 0;
  await again(() => request('DELETE', objectPath(res, o.metadata.namespace, o.metadata.name), { body }), (e) => e.code === 404);
}

async function setSuspended(o: K8sObject, suspend: boolean): Promise<void> {
  await again(() =>
    request('PATCH', objectPath(RESOURCES.cronjobs, o.metadata.namespace, o.metadata.name), {
      body: { spec: { suspend } },
      contentType: MERGE,
    }),
  );
}

/** `kubectl create job --from=cronjob/NAME`: a Job from the CronJob's template, owned by it. */
async function trigger(cronJob: K8sObject): Promise<K8sObject> {
  const template = cronJob.spec?.jobTemplate ?? {};
  const suffix = Math.random().toString(36).slice(2, 7);
  const job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      name: `${cronJob.metadata.name.slice(0, 48)}-manual-${suffix}`,
      namespace: cronJob.metadata.namespace,
      labels: template.metadata?.labels,
      annotations: { ...template.metadata?.annotations, 'cronjob.kubernetes.io/instantiate': 'manual' },
      ownerReferences: [
        {
          apiVersion: apiVersionOf(RESOURCES.cronjobs),
          kind: 'CronJob',
          name: cronJob.metadata.name,
          uid: cronJob.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: template.spec,
  };
  const created = await again<K8sObject>(
    () => request('POST', collectionPath(RESOURCES.jobs, cronJob.metadata.namespace), { body: job }),
    (e) => e.code === 409,
  );
  return created ?? (job as K8sObject);
}

/** The ReplicaSets a Deployment owns, newest revision first. */
function revisionsOf(deployment: K8sObject, replicaSets: K8sObject[]): K8sObject[] {
  return replicaSets
    .filter((rs) => rs.metadata.ownerReferences?.some((r) => r.uid === deployment.metadata.uid))
    .sort((a, b) => revisionOf(b) - revisionOf(a));
}

function revisionOf(o: K8sObject): number {
  return Number(o.metadata.annotations?.[REVISION] ?? 0) || 0;
}

/** `kubectl rollout undo --to-revision`: the Deployment's template becomes the ReplicaSet's, minus its hash label. */
async function rollBack(deployment: K8sObject, replicaSet: K8sObject): Promise<void> {
  const template = structuredClone(replicaSet.spec?.template ?? {});
  if (template.metadata?.labels) delete template.metadata.labels['pod-template-hash'];
  // As kubectl: no resourceVersion precondition (the controller's status writes change it all through a rollout).
  const patch = [{ op: 'replace', path: '/spec/template', value: template }];
  await again(() =>
    request('PATCH', objectPath(RESOURCES.deployments, deployment.metadata.namespace, deployment.metadata.name), {
      body: JSON.stringify(patch),
      contentType: JSON_PATCH,
    }),
  );
}

function imagesOf(template: any): string {
  return (template?.spec?.containers ?? []).map((c: { image?: string }) => c.image).join(', ');
}

/** The action buttons that apply to the object's kind. */
export function ObjectActions(props: { resource: Resource; object: K8sObject; compact?: boolean; onDeleted?: () => void }) {
  const { resource: res, object: o, compact } = props;
  const [dialog, setDialog] = useState<Dialog>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [created, setCreated] = useState<K8sObject | null>(null);
  const name = o.metadata.name;
  const kind = res.kind;
  const close = () => setDialog(null);
  const can = useAccess();
  const ns = o.metadata.namespace ?? null;
  const mayScale = can('patch', ref(res), ns, 'scale', name);
  const mayPatch = can('patch', ref(res), ns, '', name);
  const mayDelete = can('delete', ref(res), ns, '', name);
  const mayCreateJob = can('create', ref(RESOURCES.jobs), ns);

  const run = async (what: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await what();
    } catch (e) {
      setError(errorOfCall(e));
    } finally {
      setBusy(false);
    }
  };

  // A compact button says what it acts on, so a row's buttons have names of their own.
  // `allowed`, what RBAC says: refused → no button; not known yet → the button, disabled (no flicker).
  const button = (
    label: string,
    icon: string,
    onClick: () => void,
    allowed: boolean | undefined,
    extra?: { danger?: boolean; disabled?: boolean },
  ) =>
    allowed === false ? null : (
      <button
        class={`${compact ? 'compact' : ''} ${extra?.danger && !compact ? 'danger-outline' : ''}`}
        aria-label={compact ? `${label} ${name}` : undefined}
        title={compact ? `${label} ${kind} ${name}` : undefined}
        disabled={busy || extra?.disabled || allowed === undefined}
        onClick={onClick}
      >
        {compact ? (
          <span aria-hidden="true">{icon}</span>
        ) : (
          <>
            <span aria-hidden="true" class="action-icon">
              {icon}
            </span>
            {label}
          </>
        )}
      </button>
    );

  const suspended = !!o.spec?.suspend;
  const deleting = !!o.metadata.deletionTimestamp;
  return (
    <div class={`object-actions${compact ? ' compact' : ''}`} role="group" aria-label={`Actions for ${name}`}>
      {SCALABLE.has(res.name) && button('Scale', '⇕', () => setDialog('scale'), mayScale, { disabled: deleting })}
      {RESTARTABLE.has(res.name) && button('Restart', '↻', () => setDialog('restart'), mayPatch, { disabled: deleting })}
      {res.name === 'deployments' &&
        !compact &&
        button('Roll back', '↶', () => setDialog('rollback'), mayPatch, { disabled: deleting })}
      {res.name === 'cronjobs' &&
        button(suspended ? 'Resume' : 'Suspend', suspended ? '▶' : '‖', () => run(() => setSuspended(o, !suspended)), mayPatch)}
      {res.name === 'cronjobs' &&
        button('Trigger', '⚡', () => run(async () => setCreated(await trigger(o))), mayCreateJob, { disabled: deleting })}
      {button('Delete', '✕', () => setDialog('delete'), mayDelete, { danger: true })}
      {created && !compact && (
        <span class="action-notice" role="status">
          Created{' '}
          <Link href={detailHref(RESOURCES.jobs, created.metadata.namespace, created.metadata.name)}>Job {created.metadata.name}</Link>
        </span>
      )}
      {error && !dialog && compact && (
        // A row is too small for the message: a dialog says it.
        <Modal title={`${kind} ${name}`} onClose={() => setError(null)}>
          <div class="action-form">
            <ErrorBox error={error} />
          </div>
        </Modal>
      )}
      {error && !dialog && !compact && (
        <div class="error action-error" role="alert">
          {error.message}
          <button class="link" onClick={() => setError(null)}>
            Dismiss
          </button>
        </div>
      )}
      {dialog === 'scale' && <ScaleDialog resource={res} object={o} onClose={close} />}
      {dialog === 'restart' && (
        <ActionDialog
          title={`Restart ${kind} ${name}`}
          action="Restart"
          onClose={close}
          perform={() => restart(res, o)}
          message={
            <p>
              Replaces the pods of <strong>{name}</strong>
              {res.name === 'daemonsets' ? ' node by node' : ' one by one'}, as <code>kubectl rollout restart</code> does.
            </p>
          }
        />
      )}
      {dialog === 'rollback' && <RollbackDialog deployment={o} onClose={close} />}
      {dialog === 'delete' && (
        <DeleteDialog
          resource={res}
          object={o}
          onClose={close}
          onDeleted={() => {
            if (props.onDeleted) props.onDeleted();
            else if (!compact) navigate(listHref(res));
          }}
        />
      )}
    </div>
  );
}

/** A dialog whose confirm button runs `perform`, staying open with the API's error when it fails. */
function ActionDialog(props: {
  title: string;
  action: string;
  message: preact.ComponentChildren;
  perform: () => Promise<unknown>;
  onClose: () => void;
  onDone?: () => void;
  danger?: boolean;
  disabled?: boolean;
  wide?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await props.perform();
      props.onClose();
      props.onDone?.();
    } catch (err) {
      setError(errorOfCall(err));
      setBusy(false);
    }
  };
  return (
    <Modal title={props.title} onClose={props.onClose} wide={props.wide}>
      <form class={`action-form${props.wide ? ' wide' : ''}`} onSubmit={submit}>
        {props.message}
        <ErrorBox error={error} />
        <div class="actions">
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" class={props.danger ? 'danger' : 'primary'} disabled={busy || props.disabled}>
            {props.action}
          </button>
        </div>
      </form>
    </Modal>
  );
}

function ScaleDialog(props: { resource: Resource; object: K8sObject; onClose: () => void }) {
  const { resource: res, object: o } = props;
  const current: number = o.spec?.replicas ?? 1;
  const [value, setValue] = useState(String(current));
  const replicas = Number(value);
  const valid = value.trim() !== '' && Number.isInteger(replicas) && replicas >= 0;
  const by = managedBy(o);
  return (
    <ActionDialog
      title={`Scale ${res.kind} ${o.metadata.name}`}
      action="Save"
      onClose={props.onClose}
      disabled={!valid}
      perform={() => scale(res, o, replicas)}
      message={
        <>
          <label class="field">
            <span>Replicas</span>
            <input type="number" min={0} step={1} value={value} autoFocus onInput={(e) => setValue(e.currentTarget.value)} required />
          </label>
          <p class="muted">
            Now {current} wanted, {o.status?.readyReplicas ?? 0} ready.
          </p>
          {by && (
            <p class="muted">
              Managed by {by}: it may set the replicas back.
            </p>
          )}
        </>
      }
    />
  );
}

function DeleteDialog(props: { resource: Resource; object: K8sObject; onClose: () => void; onDeleted: () => void }) {
  const { resource: res, object: o } = props;
  const [force, setForce] = useState(false);
  const where = o.metadata.namespace ? ` in namespace ${o.metadata.namespace}` : '';
  return (
    <ActionDialog
      title={`Delete ${res.kind} ${o.metadata.name}`}
      action="Delete"
      danger
      onClose={props.onClose}
      onDone={props.onDeleted}
      perform={() => remove(res, o, force)}
      message={
        <>
          <p>
            Delete {res.kind} <strong>{o.metadata.name}</strong>
            {where}? {res.name === 'pods' ? '' : 'What it owns is deleted after it.'}
          </p>
          {res.name === 'pods' && (
            <label class="check">
              <input type="checkbox" checked={force} onChange={(e) => setForce(e.currentTarget.checked)} />
              Force (no grace period: the pod is removed at once, even if its node does not answer)
            </label>
          )}
        </>
      }
    />
  );
}

function RollbackDialog(props: { deployment: K8sObject; onClose: () => void }) {
  const d = props.deployment;
  const { items, loaded, error } = useList(RESOURCES.replicasets, { namespace: d.metadata.namespace });
  const revisions = useMemo(() => revisionsOf(d, items), [d, items]);
  const current = revisionOf(d);
  const previous = revisions.find((rs) => revisionOf(rs) !== current);
  const [chosen, setChosen] = useState<string | null>(null);
  const selected = revisions.find((rs) => rs.metadata.name === (chosen ?? previous?.metadata.name));
  return (
    <ActionDialog
      title={`Roll back Deployment ${d.metadata.name}`}
      action="Roll back"
      wide
      onClose={props.onClose}
      disabled={!selected || revisionOf(selected) === current}
      perform={() => rollBack(d, selected!)}
      message={
        <>
          <ErrorBox error={error} />
          {!loaded && <p class="muted">Loading revisions…</p>}
          {loaded && revisions.length < 2 && <p>There is no earlier revision to roll back to.</p>}
          <fieldset class="revisions">
            <legend>Revision</legend>
            {revisions.map((rs) => {
              const revision = revisionOf(rs);
              return (
                <label class="revision" key={rs.metadata.uid}>
                  <input
                    type="radio"
                    name="revision"
                    value={rs.metadata.name}
                    checked={rs === selected}
                    disabled={revision === current}
                    onChange={() => setChosen(rs.metadata.name)}
                  />
                  <span class="revision-number">#{revision}</span>
                  <span>
                    {revision === current && <Pill text="Current" tone="ok" />}
                    <span class="mono revision-images">{imagesOf(rs.spec?.template)}</span>
                    {rs.metadata.annotations?.[CHANGE_CAUSE] && <span class="muted"> · {rs.metadata.annotations[CHANGE_CAUSE]}</span>}
                  </span>
                  <span class="muted">
                    {rs.metadata.name} · <Age since={rs.metadata.creationTimestamp} />
                  </span>
                </label>
              );
            })}
          </fieldset>
        </>
      }
    />
  );
}
