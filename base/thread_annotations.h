// Lock annotations checked by clang's thread-safety analysis (-Wthread-safety).
//
// A member written `T x_ HOIST_GUARDED_BY(mu_);` may only be read or written while mu_ is held; a
// function declared HOIST_REQUIRES(mu_) may only be called with mu_ held; HOIST_EXCLUDES(mu_)
// says it takes mu_ itself (so the caller must not hold it). The lock types that carry these
// contracts are in base/mutex.h. scripts/thread-safety.sh builds the tree with clang and
// -Wthread-safety -Werror, so a broken lock rule fails that lane; docs/ARCHITECTURE.md, "Locks".
//
// Under compilers without the analysis (g++) every macro expands to nothing: the annotations cost
// nothing at run time either way.
#pragma once

#if defined(__clang__) && defined(__has_attribute)
#if __has_attribute(guarded_by)
#define HOIST_THREAD_ANNOTATION_(x) __attribute__((x))
#endif
#endif
#ifndef HOIST_THREAD_ANNOTATION_
#define HOIST_THREAD_ANNOTATION_(x)
#endif

// On a class: its objects are locks (capabilities) named `name` in diagnostics.
#define HOIST_CAPABILITY(name) HOIST_THREAD_ANNOTATION_(capability(name))
// On a class: an RAII object that holds a capability for its lifetime.
#define HOIST_SCOPED_CAPABILITY HOIST_THREAD_ANNOTATION_(scoped_lockable)

// On a data member: accessed only with `mu` held.
#define HOIST_GUARDED_BY(mu) HOIST_THREAD_ANNOTATION_(guarded_by(mu))
// On a pointer member: what it points to is accessed only with `mu` held.
#define HOIST_PT_GUARDED_BY(mu) HOIST_THREAD_ANNOTATION_(pt_guarded_by(mu))
// On a lock member: the lock order (these locks are taken after / before the named ones).
#define HOIST_ACQUIRED_AFTER(...) HOIST_THREAD_ANNOTATION_(acquired_after(__VA_ARGS__))
#define HOIST_ACQUIRED_BEFORE(...) HOIST_THREAD_ANNOTATION_(acquired_before(__VA_ARGS__))

// On a function: the caller holds the locks (exclusively / at least shared).
#define HOIST_REQUIRES(...) HOIST_THREAD_ANNOTATION_(requires_capability(__VA_ARGS__))
#define HOIST_REQUIRES_SHARED(...) HOIST_THREAD_ANNOTATION_(requires_shared_capability(__VA_ARGS__))
// On a function: the caller must not hold the locks (the function takes them).
#define HOIST_EXCLUDES(...) HOIST_THREAD_ANNOTATION_(locks_excluded(__VA_ARGS__))

// On a function: it takes / gives back the locks (no argument: the object itself).
#define HOIST_ACQUIRE(...) HOIST_THREAD_ANNOTATION_(acquire_capability(__VA_ARGS__))
#define HOIST_ACQUIRE_SHARED(...) HOIST_THREAD_ANNOTATION_(acquire_shared_capability(__VA_ARGS__))
#define HOIST_RELEASE(...) HOIST_THREAD_ANNOTATION_(release_capability(__VA_ARGS__))
#define HOIST_RELEASE_SHARED(...) HOIST_THREAD_ANNOTATION_(release_shared_capability(__VA_ARGS__))
// On a function: it takes the locks only when it returns `result` (e.g. true).
#define HOIST_TRY_ACQUIRE(...) HOIST_THREAD_ANNOTATION_(try_acquire_capability(__VA_ARGS__))
// On a function: it checks (aborting otherwise) that the lock is held; afterwards it counts as
// held.
#define HOIST_ASSERT_CAPABILITY(mu) HOIST_THREAD_ANNOTATION_(assert_capability(mu))
// On a function: it returns a reference to the lock `mu`.
#define HOIST_RETURN_CAPABILITY(mu) HOIST_THREAD_ANNOTATION_(lock_returned(mu))

// On a function: not checked. Only for code the analysis cannot follow; say why next to it.
#define HOIST_NO_THREAD_SAFETY_ANALYSIS HOIST_THREAD_ANNOTATION_(no_thread_safety_analysis)
