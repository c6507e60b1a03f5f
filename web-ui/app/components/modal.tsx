// Dialogs: a modal, and a confirmation that names what it will do.

import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export function Modal(props: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  return (
    <dialog ref={dialog} class={props.wide ? 'wide' : ''} aria-label={props.title} onClose={props.onClose} onCancel={props.onClose}>
      <header>
        <h2>{props.title}</h2>
        <button class="icon" aria-label="Close" onClick={props.onClose}>
          ✕
        </button>
      </header>
      <div class="dialog-body">{props.children}</div>
    </dialog>
  );
}

export function Confirm(props: {
  title: string;
  message: ComponentChildren;
  action: string;
  danger?: boolean;
  onConfirm: () => void;
  onClose: () => void;
}) {
  return (
    <Modal title={props.title} onClose={props.onClose}>
      <p>{props.message}</p>
      <div class="actions">
        <button onClick={props.onClose}>Cancel</button>
        <button
          class={props.danger ? 'danger' : 'primary'}
          onClick={() => {
            props.onConfirm();
            props.onClose();
          }}
        >
          {props.action}
        </button>
      </div>
    </Modal>
  );
}
