"""Procedural furnished rooms in the on-disk layout of ScanNet, S3DIS or Structured3D.

A room is a box shell (floor, walls with door and window openings, ceiling) furnished with
pieces built from boxes and curtain sheets, each piece a labelled object. Its surfaces are
sampled as coloured points with normals; a *flavor* then imitates one dataset:

==============  ==================  =================  ==================================
flavor          labels              geometry           capture
==============  ==================  =================  ==================================
``scannet``     ScanNet-20 and      homes, any yaw     RGB-D scan: noise, holes, uneven
                ScanNet200                             density, ceiling mostly unseen,
                                                       dim warm colours
``s3dis``       S3DIS-13            offices, beams,    laser scan: dense, light noise,
                                    columns, aligned   few holes, greyish colours
``structured3d`` Structured3D-25    homes, aligned,    rendered: clean dense surfaces,
                                    rooms of a house   saturated flat-shaded colours
==============  ==================  =================  ==================================

Objects whose class is not in a dataset's label set are labelled as that dataset labels them
(``clutter`` / ``otherprop`` / ``otherfurniture``) or ignored (``-1``), e.g. ScanNet's ceiling,
pillows and lamps (which ScanNet's second labelling, ScanNet200 in ``segment200.npy``, names:
``flavors.SCANNET200_LABELS``). ScanNet datasets also get the data-efficient benchmark's lists
(``tasks/``, :mod:`ppt.data.scenes.data_efficient`). Points hidden in any real capture (inside solid furniture, behind pieces
standing against a wall, faces looking down below eye height) are left out for every flavor.

Modules, in the order a room is made: :mod:`.flavors` (the dataset imitated, colours),
:mod:`.furniture` (pieces of boxes and sheets), :mod:`.layouts` (shell, openings, furniture on
the floor plan), :mod:`.capture` (surface sampling, visibility, colours and capture effects),
:mod:`.room` (:func:`synthesize_room`), :mod:`.writers` (datasets on disk), :mod:`.variants`
(controlled departures of a written dataset from its flavor).
"""

from ppt.data.scenes.rooms.flavors import FLAVORS, RoomFlavor
from ppt.data.scenes.rooms.room import SyntheticRoom, synthesize_room
from ppt.data.scenes.rooms.writers import write_synthetic_rooms

__all__ = ["RoomFlavor", "SyntheticRoom", "FLAVORS", "synthesize_room", "write_synthetic_rooms"]
