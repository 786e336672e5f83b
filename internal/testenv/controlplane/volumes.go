package controlplane

import (
	"context"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// provisionVolumes stands in for a storage provisioner: every pending PVC without a
// volume gets a hostPath PV made for it and pre-bound to it, which the controller
// manager's volume binder then binds. Without it, pods of a StatefulSet with
// volumeClaimTemplates stay unschedulable. Nothing is ever written to the hostPath,
// since KWOK runs no containers.
func (cp *ControlPlane) provisionVolumes(ctx context.Context) error {
	cs, err := kubernetes.NewForConfig(cp.admin)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(cs, 0)
	pvcs := factory.Core().V1().PersistentVolumeClaims().Informer()
	ensure := func(obj any) {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		if !ok || pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending || pvc.DeletionTimestamp != nil {
			return
		}
		pv := volumeFor(pvc, filepath.Join(cp.workDir, "volumes", string(pvc.UID)))
		if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) && ctx.Err() == nil {
			cp.opts.Logf("controlplane: creating PersistentVolume for claim %s/%s: %v", pvc.Namespace, pvc.Name, err)
		}
	}
	if _, err := pvcs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    ensure,
		UpdateFunc: func(_, obj any) { ensure(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	cp.bgDone.Add(1)
	go func() {
		defer cp.bgDone.Done()
		<-ctx.Done()
		factory.Shutdown()
	}()
	return nil
}

func volumeFor(pvc *corev1.PersistentVolumeClaim, path string) *corev1.PersistentVolume {
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	capacity := corev1.ResourceList{}
	if size, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; ok {
		capacity[corev1.ResourceStorage] = size
	}
	hostPathType := corev1.HostPathDirectoryOrCreate
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "pvc-" + string(pvc.UID),
			Labels: map[string]string{"pdguard.test/provisioned": "true"},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      capacity,
			AccessModes:                   pvc.Spec.AccessModes,
			StorageClassName:              class,
			VolumeMode:                    pvc.Spec.VolumeMode,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{
				APIVersion: "v1",
				Kind:       "PersistentVolumeClaim",
				Namespace:  pvc.Namespace,
				Name:       pvc.Name,
				UID:        pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &hostPathType},
			},
		},
	}
}
