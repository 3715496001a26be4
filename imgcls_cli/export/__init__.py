"""`imgcls export`: a run's model in other formats (writers), run by their own runtimes
(runtimes), checked against model.keras and written as a folder (command)."""
