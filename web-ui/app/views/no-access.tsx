// What a view shows in place of a list the signed-in user may not read.

import type { Resource } from '../api/resources';

/** "No access": the user may not list `res` there (RBAC said so through a review). */
export function NoAccess(props: { res: Resource; namespace: string | null }) {
  const where = props.res.namespaced ? (props.namespace ? ` in namespace ${props.namespace}` : ' in all namespaces') : '';
  return (
    <div class="no-access" role="note" aria-label={`No access to ${props.res.title}`}>
      <strong>No access</strong>
      <span class="muted">
        {' '}
        — you may not list {props.res.title}
        {where}.
      </span>
    </div>
  );
}
